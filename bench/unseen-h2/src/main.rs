//! A service nobody tuned layoutdump on: an HTTP/2 server written on hyper directly (no
//! axum, no tower), reqwest HTTP/2 clients of its own. Requests park in handlers on a
//! tokio RwLock held for writing by another task, on a request body the client never
//! finishes, on a JoinHandle of a task that waits on a watch channel, and on a sleep.
//! Prints `GROUND_TRUTH {...}` (each handler's task-local label and await line) then
//! `READY`, and parks.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use tokio::sync::{RwLock, watch};

static STARTED: AtomicUsize = AtomicUsize::new(0);

struct Shared {
    table: RwLock<Vec<u64>>,
    go: watch::Receiver<bool>,
}

const LINE_READ_TABLE: u32 = line!() + 3;
async fn read_table(shared: Arc<Shared>) -> String {
    STARTED.fetch_add(1, Ordering::SeqCst);
    let table = shared.table.read().await;
    format!("{}", table.len())
}

const LINE_SLURP: u32 = line!() + 4;
async fn slurp(body: Incoming) -> String {
    STARTED.fetch_add(1, Ordering::SeqCst);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        drop(frame);
    }
    "done".into()
}

const LINE_DELEGATE: u32 = line!() + 5;
async fn delegate(shared: Arc<Shared>) -> String {
    STARTED.fetch_add(1, Ordering::SeqCst);
    let mut go = shared.go.clone();
    let worker = tokio::spawn(async move { go.wait_for(|g| *g).await.is_ok() });
    let ok = worker.await;
    format!("{ok:?}")
}

const LINE_NAP: u32 = line!() + 3;
async fn nap() -> String {
    STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "rested".into()
}

async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = match req.uri().path() {
        "/table" => read_table(shared).await,
        "/upload" => slurp(req.into_body()).await,
        "/delegate" => delegate(shared).await,
        _ => nap().await,
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (_go_tx, go) = watch::channel(false);
    let shared = Arc::new(Shared {
        table: RwLock::new(Vec::new()),
        go,
    });
    // A writer that never lets go.
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        let _guard = writer_shared.table.write().await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    tokio::task::yield_now().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let shared = server_shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| route(req, shared.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });

    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut calls = Vec::new();
    for path in ["/table", "/table", "/delegate", "/nap", "/nap"] {
        let c = client.clone();
        let url = format!("http://{addr}{path}");
        calls.push(tokio::spawn(async move {
            c.get(url).send().await.map(|r| r.status())
        }));
    }
    // An upload whose body never ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"first part"))))
        .await
        .unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|f| (f.map(|f| f.into_data().unwrap_or_default()), rx))
    });
    let body = reqwest::Body::wrap_stream(stream);
    let upload = client.post(format!("http://{addr}/upload")).body(body);
    calls.push(tokio::spawn(async move {
        upload.send().await.map(|r| r.status())
    }));

    while STARTED.load(Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "GROUND_TRUTH {{\"handlers\":[[\"unseen_h2::read_table\",{LINE_READ_TABLE},2],[\"unseen_h2::slurp\",{LINE_SLURP},1],[\"unseen_h2::delegate\",{LINE_DELEGATE},1],[\"unseen_h2::nap\",{LINE_NAP},2]],\"writer_task\":\"{}\"}}",
        writer.id()
    );
    println!("READY");
    std::future::pending::<()>().await;
    drop((tx, calls));
}
