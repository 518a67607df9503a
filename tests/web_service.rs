//! A real web service end to end (`web-service`: axum, hyper, tower, reqwest, tokio-util,
//! tonic): every in-flight handler, reached by generic descent through futures no layout
//! describes, with its socket and its locks. Dev and release; ELF cores and minidumps.

mod common;

use common::report::{BlockedOn, Frame, Report, Task};
use common::{Profile, fixture_dumps, run_layoutdump};
use serde_json::Value;

/// What the fixture calls a handler's wait, in tokio.layout's words. reqwest's pending
/// response waits on hyper's dispatch callback, a oneshot.
fn leaf_kind(truth: &str) -> &str {
    match truth {
        "response" => "oneshot receive",
        other => other,
    }
}

/// Whether `frame` is `function` (as the fixture reports it) awaiting at `line`.
fn is_at(frame: &Frame, function: &Value, line: &Value) -> bool {
    frame.function == function.as_str().unwrap_or_default()
        && frame.location.as_ref().map(|l| l.line) == line.as_u64()
}

/// A leaf of `kind` whose member `field` is `value` (as the fixture reports it).
fn leaf_is(leaf: Option<&BlockedOn>, kind: &str, field: &str, value: &Value) -> bool {
    leaf.is_some_and(|l| l.kind == kind && l.fields.get(field) == Some(value))
}

fn kind(leaf: Option<&BlockedOn>) -> &str {
    leaf.map_or("", |l| l.kind.as_str())
}

fn holds(task: &Task, kind: &str) -> bool {
    task.holds.iter().any(|h| h.kind == kind)
}

/// No layout describes hyper, axum or tower, so every in-flight handler must be reached by
/// generic descent through their hand-written futures, at the handler's own await line,
/// with the right leaf; every server socket must show a read on its fd; every lock's
/// holder must be known from the guard it keeps, and a lock-order deadlock reported with
/// both await lines. The gRPC side (tonic, through a `tower::buffer` worker) the same,
/// down to each handler's await (`grpc_matches_ground_truth`).
#[test]
fn handlers_and_sockets_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("web-service", profile);
        for dump in [&d.core, &d.minidump] {
            let what = format!("{}", dump.display());
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let r: Report = serde_json::from_slice(&out.stdout).unwrap();
            // The only warning: the fixture's lock-order deadlock, naming both tasks and
            // both await lines (a finding, not missing data: exit 0).
            let dl = d.truth["deadlock"].as_array().unwrap();
            let at = |t: &Value| {
                format!(
                    "task {} (at web-service/src/main.rs:{})",
                    t["task"], t["line"]
                )
            };
            let cycle = format!(
                "possible deadlock: {} → {} → task {} (each waits for the next to finish or to release what it holds)",
                at(&dl[0]),
                at(&dl[1]),
                dl[0]["task"]
            );
            assert_eq!(r.warnings, [cycle], "{what}");
            assert_eq!(out.status.code(), Some(0), "{what}");
            let tasks: Vec<&Task> = r.tasks().map(|(_, t)| t).collect();
            assert_eq!(
                tasks.len() as u64,
                d.truth["runtime"]["alive"].as_u64().unwrap(),
                "{what}"
            );
            let by_id = |id: &Value| {
                let (_, t) = r
                    .task(id.as_u64().unwrap())
                    .unwrap_or_else(|| panic!("{what}: task {id} not listed"));
                t
            };

            // Each handler, inside its connection task, at its await line, with its leaf;
            // found through hyper's, axum's and tower's futures by generic descent.
            for h in d.truth["handlers"].as_array().unwrap() {
                let task = by_id(&h["task"]);
                let here = |f: &&Frame| is_at(f, &h["fn"], &h["line"]);
                let (frames, leaf) = task
                    .chains()
                    .into_iter()
                    .find(|(frames, _)| frames.iter().any(here))
                    .unwrap_or_else(|| panic!("{what}: handler {h} not shown"));
                assert_eq!(
                    kind(leaf),
                    leaf_kind(h["leaf"].as_str().unwrap()),
                    "{what}: handler {h}"
                );
                let handler = frames.iter().position(here).unwrap();
                assert_eq!(
                    frames[handler].via.as_deref(),
                    Some("async_fn"),
                    "{what}: handler {h}"
                );
                assert!(
                    frames[..handler]
                        .iter()
                        .any(|f| f.via.as_deref() == Some("generic")),
                    "{what}: handler {h} reached with no generic step"
                );
            }

            // Each client task at its own await line.
            for c in d.truth["clients"].as_array().unwrap() {
                let shown = by_id(&c["task"])
                    .chains()
                    .iter()
                    .any(|(frames, _)| frames.iter().any(|f| is_at(f, &c["fn"], &c["line"])));
                assert!(shown, "{what}: client {c} not shown");
            }
            // The HTTP/2 request's response is awaited in hyper's client connection task, on
            // its h2 stream (hyper.layout): a stream the client opened has an odd id.
            let h2_waits: Vec<u64> = tasks
                .iter()
                .flat_map(|t| t.chains())
                .filter_map(|(_, leaf)| leaf.filter(|l| l.kind == "h2 response"))
                .filter_map(|l| l.fields.get("stream")?.as_u64())
                .collect();
            // tonic's calls waiting for their response wait on theirs the same way.
            let grpc_responses = d.truth["grpc"]["clients"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["leaf"] == "response")
                .count();
            assert!(
                h2_waits.len() == 1 + grpc_responses && h2_waits.iter().all(|s| s % 2 == 1),
                "{what}: h2 responses awaited: {h2_waits:?}"
            );

            // Each server-side socket is read by exactly one task, at its fd.
            for conn in d.truth["connections"].as_array().unwrap() {
                if conn["state"] == "held_unread" {
                    continue; // in a Vec of the upstream task, not awaited by anyone
                }
                // A download waits for room in the socket of a client that reads nothing.
                let io = if conn["state"] == "writing" {
                    "write"
                } else {
                    "read"
                };
                let on_fd = |leaf: Option<&BlockedOn>| leaf_is(leaf, io, "fd", &conn["fd"]);
                let readers: Vec<Option<u64>> = tasks
                    .iter()
                    .filter(|t| t.chains().iter().any(|(_, leaf)| on_fd(*leaf)))
                    .map(|t| t.id)
                    .collect();
                assert_eq!(readers.len(), 1, "{what}: connection {conn}: {readers:?}");
                if let Some(id) = conn.get("task") {
                    assert_eq!(readers[0], id.as_u64(), "{what}: connection {conn}");
                }
                // What hyper's HTTP/1 dispatcher says of it (hyper.layout): a request in
                // flight has its head read; a half-sent one has its bytes buffered.
                let dispatcher = tasks
                    .iter()
                    .flat_map(|t| t.chains())
                    .filter(|(_, leaf)| on_fd(*leaf))
                    .flat_map(|(frames, _)| frames)
                    .find(|f| {
                        f.future
                            .starts_with("hyper::proto::h1::dispatch::Dispatcher<")
                    });
                let local = |f: &Frame, name: &str| f.locals.get(name).cloned();
                let half_sent = d.truth["raw_clients"][1]["sent"].as_str().unwrap().len();
                match conn["state"].as_str().unwrap() {
                    "in_flight" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(
                            local(f, "reading"),
                            Some("KeepAlive".into()),
                            "{what}: {conn}"
                        );
                        assert_eq!(f.via.as_deref(), Some("rule"), "{what}: {conn}");
                    }
                    "writing" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(local(f, "writing"), Some("Body".into()), "{what}: {conn}");
                        // Its other branch: the body, a file that waits on nothing.
                        let file_idle = tasks
                            .iter()
                            .flat_map(|t| t.chains())
                            .any(|(_, l)| leaf_is(l, "file (idle)", "fd", &conn["file_fd"]));
                        assert!(file_idle, "{what}: {conn}: no idle file");
                    }
                    "reading" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(local(f, "reading"), Some("Init".into()), "{what}: {conn}");
                        assert_eq!(
                            local(f, "request_bytes"),
                            Some(half_sent.into()),
                            "{what}: {conn}"
                        );
                    }
                    _ => {}
                }
            }

            // The future main gives to block_on, at its await line: in release DWARF has
            // no location for it, and it is found in block_on's stack frame.
            let want = &d.truth["block_on"];
            let block_on = r
                .block_on
                .iter()
                .find(|b| {
                    b.backtrace
                        .iter()
                        .any(|f| is_at(f, &want["fn"], &want["line"]))
                })
                .unwrap_or_else(|| panic!("{what}: block_on {want} not shown: {:?}", r.block_on));
            if profile == Profile::Release {
                let how = block_on.found_by.as_deref().unwrap_or_default();
                assert!(how.contains("stack frame"), "{what}: found by {how:?}");
            }

            // Who holds each lock: the holder task and both deadlocked tasks, by the guards
            // they keep across an await; each /lock handler's task waits for the holder.
            let holder = &d.truth["lock_holder"]["task"];
            assert!(holds(by_id(holder), "lock"), "{what}: task {holder}");
            for t in dl {
                assert!(holds(by_id(&t["task"]), "lock"), "{what}: {t}");
            }
            let dot = run_layoutdump(&["run", dump.to_str().unwrap(), "--graph", "dot"]);
            let dot = String::from_utf8_lossy(&dot.stdout);
            for h in d.truth["handlers"].as_array().unwrap() {
                // A /lock handler waits for the lock's holder; an /actor handler for the
                // actor, which keeps the reply senders in a Vec.
                let waits_for = match h["route"].as_str().unwrap() {
                    "/lock" => holder,
                    "/actor" => &d.truth["actor_task"],
                    _ => continue,
                };
                let edge = format!("t{} -> t{waits_for};", h["task"]);
                assert!(dot.contains(&edge), "{what}: no {edge} in\n{dot}");
            }
            // Each client request waits for the connection task that will answer it: the
            // one keeping its response's oneshot sender.
            for c in d.truth["clients"].as_array().unwrap() {
                let from = format!("t{} -> t", c["task"]);
                let to = dot
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(&from))
                    .and_then(|rest| rest.trim_end_matches(';').parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{what}: client {c} waits for no task:\n{dot}"));
                assert!(
                    holds(by_id(&Value::from(to)), "oneshot sender"),
                    "{what}: client {c} → task {to}"
                );
            }

            // --group: one group per handler and await line, named by it, whatever the
            // framework frames above it; the connections' sockets do not split them.
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--group"]);
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines: Vec<(&Value, &Value)> = d.truth["handlers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (&h["fn"], &h["line"]))
                .collect();
            lines.sort_by_key(|(f, l)| (f.to_string(), l.as_u64()));
            lines.dedup();
            for (f, l) in lines {
                let name = format!(
                    "{}  {} at web-service/src/main.rs:{l}  ids ",
                    "tasks [idle]",
                    f.as_str().unwrap()
                );
                let n = d.truth["handlers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["fn"] == *f && h["line"] == *l)
                    .count();
                let header = if n == 1 {
                    name.replacen("tasks", "task", 1)
                } else {
                    name
                };
                assert!(
                    text.contains(&format!("  {n} {header}")),
                    "{what}: no group `{n} {header}` in\n{text}"
                );
            }

            grpc_matches_ground_truth(&what, &d.truth["grpc"], &r, &dot);

            // Unknown leaves: at most 5% of all (the target).
            let leaves: Vec<&str> = tasks.iter().flat_map(|t| t.leaf_kinds()).collect();
            let unknown = leaves.iter().filter(|k| **k == "unknown").count();
            assert!(
                unknown * 20 <= leaves.len(),
                "{what}: {unknown} of {} leaves unknown",
                leaves.len()
            );
        }
    }
}

/// Whether `frame` is the gRPC handler or client function the fixture names: a free fn by
/// its path, an `#[async_trait]` method by the async block inside it (in an impl the
/// program cannot name).
fn is_grpc_fn(frame: &Frame, want: &Value) -> bool {
    let function = frame.function.as_str();
    let name = want["fn"].as_str().unwrap();
    let named = if want["async_trait"] == true {
        function.starts_with("web_service::grpc::{impl#")
            && function.ends_with(&format!("}}::{name}::{{async block#0}}"))
    } else {
        function == name
    };
    named && frame.location.as_ref().map(|l| l.line) == want["line"].as_u64()
}

/// The tonic server and clients: each handler in its h2 stream's task at its await line,
/// the streaming ones on their h2 stream; each client at its call; the call queued behind
/// a concurrency limit waits for the buffer worker, which waits for the call in flight.
fn grpc_matches_ground_truth(what: &str, truth: &Value, r: &Report, dot: &str) {
    let by_id = |id: &Value| {
        let (_, t) = r
            .task(id.as_u64().unwrap())
            .unwrap_or_else(|| panic!("{what}: gRPC task {id} not listed"));
        t
    };
    for h in truth["handlers"].as_array().unwrap() {
        let chains = by_id(&h["task"]).chains();
        let leaf = if h["line"].is_null() {
            // A server-streaming handler has returned; its stream task sends the stream.
            assert_eq!(chains.len(), 1, "{what}: {h}");
            chains[0].1
        } else {
            let (frames, leaf) = chains
                .iter()
                .find(|(frames, _)| frames.iter().any(|f| is_grpc_fn(f, h)))
                .unwrap_or_else(|| panic!("{what}: gRPC handler {h} not shown"));
            let at = frames.iter().position(|f| is_grpc_fn(f, h)).unwrap();
            assert_eq!(frames[at].via.as_deref(), Some("async_fn"), "{what}: {h}");
            *leaf
        };
        assert_eq!(
            kind(leaf),
            h["leaf"].as_str().unwrap(),
            "{what}: gRPC handler {h}"
        );
    }
    let edges_from = |task: u64| -> Vec<u64> {
        let from = format!("t{task} -> t");
        dot.lines()
            .filter_map(|l| l.trim().strip_prefix(&from))
            .filter_map(|rest| rest.trim_end_matches(';').parse().ok())
            .collect()
    };
    for c in truth["clients"].as_array().unwrap() {
        let chains = by_id(&c["task"]).chains();
        let (_, leaf) = chains
            .iter()
            .find(|(frames, _)| frames.iter().any(|f| is_grpc_fn(f, c)))
            .unwrap_or_else(|| panic!("{what}: gRPC client {c} not shown"));
        let want = match c["leaf"].as_str().unwrap() {
            "response" | "queued" => "oneshot receive",
            other => other,
        };
        assert_eq!(kind(*leaf), want, "{what}: gRPC client {c}");
        if c["leaf"] != "queued" {
            continue;
        }
        // Queued: the worker keeps the reply sender, and waits for the semaphore permit
        // the call in flight holds.
        let workers = edges_from(c["task"].as_u64().unwrap());
        assert_eq!(workers.len(), 1, "{what}: {c} waits for {workers:?}\n{dot}");
        let worker = by_id(&Value::from(workers[0]));
        let first = &worker.backtrace[0];
        assert!(
            first.future.starts_with("tower::buffer::worker::Worker<"),
            "{what}: {c} waits for task {:?}",
            worker.id
        );
        assert_eq!(
            first.locals.get("waiting_for"),
            Some(&Value::from("service")),
            "{what}"
        );
        assert_eq!(worker.leaf_kind(), "semaphore", "{what}");
        assert_eq!(
            edges_from(worker.id.unwrap()),
            [c["waits_behind"].as_u64().unwrap()],
            "{what}: the worker waits for the call in flight\n{dot}"
        );
    }
    // The server's task, at its await, accepting on its listener.
    let server = &truth["server"];
    let accepts = by_id(&server["task"])
        .chains()
        .into_iter()
        .any(|(frames, leaf)| {
            frames
                .iter()
                .any(|f| is_at(f, &server["fn"], &server["line"]))
                && leaf_is(leaf, "read", "fd", &server["fd"])
        });
    assert!(accepts, "{what}: gRPC server {server}");
}
