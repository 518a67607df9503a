//! The layouts shipped in this folder, as text: embedded in the binary (so that
//! `layoutdump run tokio` works anywhere) and compiled by the language's tests, from this
//! one table.

/// (name, text) of every shipped layout.
pub const SHIPPED: &[(&str, &str)] = &[
    ("std", include_str!("std.layout")),
    ("slab", include_str!("slab.layout")),
    ("io_uring", include_str!("io_uring.layout")),
    ("tokio", include_str!("tokio.layout")),
    ("futures", include_str!("futures.layout")),
    ("tracing", include_str!("tracing.layout")),
    ("hyper", include_str!("hyper.layout")),
    ("tower", include_str!("tower.layout")),
    ("tonic", include_str!("tonic.layout")),
    ("actix", include_str!("actix.layout")),
    ("async_task", include_str!("async_task.layout")),
    ("async_executor", include_str!("async_executor.layout")),
    // async-std before smol: both find an async-std program's executor, and auto-detection
    // keeps the first report of a runtime (async-std's has task ids and names).
    ("async-std", include_str!("async-std.layout")),
    ("smol", include_str!("smol.layout")),
    ("futures-executor", include_str!("futures-executor.layout")),
    ("embassy", include_str!("embassy.layout")),
    ("monoio", include_str!("monoio.layout")),
    ("compio", include_str!("compio.layout")),
    ("glommio", include_str!("glommio.layout")),
];

/// Layouts that describe combinators or std types, used by others, not run on their own.
pub const LIBRARIES: &[&str] = &[
    "std",
    "slab",
    "io_uring",
    "futures",
    "tracing",
    "hyper",
    "tower",
    "tonic",
    "actix",
    "async_task",
    "async_executor",
];
