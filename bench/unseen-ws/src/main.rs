//! A chat-like service: clients connect over WebSockets, each session forwards the hub's
//! broadcast messages to its socket and reads the client's; a JoinSet of workers waits on
//! a CancellationToken and an RwLock; one HTTP request waits on a slow handler behind
//! tower-http's timeout. Prints `GROUND_TRUTH {...}` and `READY`, then parks.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{RwLock, broadcast};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

static SEEN: StdMutex<Vec<(String, u64, u32)>> = StdMutex::new(Vec::new());

fn task() -> u64 {
    tokio::task::id().to_string().parse().unwrap()
}

fn seen(what: &str, line: u32) {
    SEEN.lock().unwrap().push((what.to_string(), task(), line));
}

#[derive(Clone)]
struct Hub {
    tx: broadcast::Sender<String>,
    config: Arc<RwLock<u32>>,
}

async fn ws(upgrade: WebSocketUpgrade, State(hub): State<Hub>) -> axum::response::Response {
    upgrade.on_upgrade(move |socket| session(socket, hub))
}

async fn session(socket: WebSocket, hub: Hub) {
    let (mut out, mut inp) = socket.split();
    let mut rx = hub.tx.subscribe();
    seen("session", line!() + 2);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(m) => { if out.send(Message::Text(m.into())).await.is_err() { break } }
                Err(_) => break,
            },
            msg = inp.next() => match msg {
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}

async fn slow() -> &'static str {
    seen("slow", line!() + 1);
    tokio::time::sleep(Duration::from_secs(3000)).await;
    "late"
}

async fn worker(n: u32, stop: CancellationToken, config: Arc<RwLock<u32>>) {
    if n == 0 {
        let mut w = config.write().await;
        seen("writer", line!() + 1);
        stop.cancelled().await;
        *w += 1;
    } else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen("reader", line!() + 1);
        let r = config.read().await;
        drop(r);
    }
}

#[tokio::main]
async fn main() {
    let (tx, _) = broadcast::channel(16);
    let hub = Hub { tx, config: Arc::new(RwLock::new(0)) };
    let stop = CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..3 {
        workers.spawn(worker(n, stop.clone(), hub.config.clone()));
    }
    let app = Router::new()
        .route("/ws", get(ws))
        .route("/slow", get(slow))
        .with_state(hub.clone())
        .layer(TimeoutLayer::new(Duration::from_secs(3600)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        clients.push(tokio::spawn(async move {
            let (_w, mut r) = stream.split();
            seen("client", line!() + 1);
            while let Some(Ok(_)) = r.next().await {}
        }));
    }
    let slow_client = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        seen("slow_client", line!() + 1);
        let mut buf = [0u8; 16];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
    });
    while SEEN.lock().unwrap().len() < 4 + 4 + 1 + 1 + 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.tx.send("hello".into()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen: Vec<_> = SEEN.lock().unwrap().iter().map(|(w, t, l)| json!({"what": w, "task": t, "line": l})).collect();
    println!("GROUND_TRUTH {}", json!({ "pid": std::process::id(), "seen": seen }));
    println!("READY");
    std::future::pending::<()>().await;
    drop((clients, slow_client, workers, stop));
}
