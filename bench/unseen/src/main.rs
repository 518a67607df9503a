//! Holds N tokio tasks in await shapes the shipped layout was not tuned on (select!,
//! join!, a oneshot, an RwLock, a timeout, a JoinHandle, a Notify), prints how many are
//! alive and the first and last task ids it spawned, then waits to be captured.
//! Usage: unseen N

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, RwLock, oneshot};

async fn select_waiter(notify: Arc<Notify>, secs: u64) -> u64 {
    tokio::select! {
        _ = notify.notified() => 0,
        _ = tokio::time::sleep(Duration::from_secs(secs)) => secs,
    }
}

async fn oneshot_waiter(rx: oneshot::Receiver<u64>) -> u64 {
    rx.await.unwrap_or(0)
}

async fn reader(lock: Arc<RwLock<u64>>, n: u64) -> u64 {
    let v = lock.read().await;
    *v + n
}

async fn with_deadline(secs: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), std::future::pending::<()>())
        .await
        .is_err()
}

async fn both(a: u64, b: u64) -> u64 {
    let ((), ()) = tokio::join!(
        tokio::time::sleep(Duration::from_secs(a)),
        tokio::time::sleep(Duration::from_secs(b))
    );
    a + b
}

async fn awaits_another(secs: u64) -> u64 {
    let inner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        secs
    });
    inner.await.unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let notify = Arc::new(Notify::new());
    let lock = Arc::new(RwLock::new(7u64));
    // Held for the whole run: every reader waits.
    let _writer = lock.clone().write_owned().await;
    let mut senders = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let secs = 3600 + i;
        let handle = match i % 6 {
            0 => tokio::spawn(select_waiter(notify.clone(), secs)),
            1 => {
                let (tx, rx) = oneshot::channel();
                senders.push(tx);
                tokio::spawn(oneshot_waiter(rx))
            }
            2 => tokio::spawn(reader(lock.clone(), i)),
            3 => tokio::spawn(async move { u64::from(with_deadline(secs).await) }),
            4 => tokio::spawn(both(secs, secs + 1)),
            _ => tokio::spawn(awaits_another(secs)),
        };
        ids.push(handle.id());
        // The handles are dropped: the tasks run on, detached.
    }
    // Let every task reach its first await.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    println!(
        "alive {alive} first {} last {}",
        ids.first().map(|i| i.to_string()).unwrap_or_default(),
        ids.last().map(|i| i.to_string()).unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(1_000_000)).await;
    drop(senders);
}
