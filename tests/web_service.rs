//! A real web service end to end (`web-service`: axum + hyper + tower + reqwest +
//! tokio-util): no layout describes hyper, axum or tower, so every in-flight handler must
//! be reached by generic descent through their hand-written futures, at the handler's own
//! await line, with the right leaf; every server socket must show a read on its fd; every
//! lock's holder must be known from the guard it keeps, and a lock-order deadlock reported
//! with both await lines. The gRPC side (tonic, through a `tower::buffer` worker) the
//! same, down to each handler's await. Dev and release builds; ELF cores and minidumps.

mod common;

use common::{Profile, fixture_dumps, run_layoutdump};
use serde_json::Value;

/// Every chain of a backtrace from its root to a leaf, through each branch: the frames
/// on the way and what the chain ends blocked on.
fn chains<'a>(backtrace: &'a Value, blocked_on: &'a Value) -> Vec<(Vec<&'a Value>, &'a Value)> {
    let frames = backtrace.as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, f) in frames.iter().enumerate() {
        if let Some(branches) = f["branches"].as_array() {
            let head: Vec<&Value> = frames[..=i].iter().collect();
            return branches
                .iter()
                .flat_map(|b| chains(&b["backtrace"], &b["blocked_on"]))
                .map(|(tail, leaf)| (head.iter().copied().chain(tail).collect(), leaf))
                .collect();
        }
    }
    vec![(frames.iter().collect(), blocked_on)]
}

fn task_chains(task: &Value) -> Vec<(Vec<&Value>, &Value)> {
    chains(&task["backtrace"], &task["blocked_on"])
}

fn all_tasks(report: &Value) -> Vec<&Value> {
    report["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["tasks"].as_array().unwrap())
        .collect()
}

/// What the fixture calls a handler's wait, in tokio.layout's words. reqwest's pending
/// response waits on hyper's dispatch callback, a oneshot.
fn leaf_kind(truth: &str) -> &str {
    match truth {
        "response" => "oneshot receive",
        other => other,
    }
}

#[test]
fn handlers_and_sockets_match_ground_truth() {
    for profile in [Profile::Dev, Profile::Release] {
        let d = fixture_dumps("web-service", profile);
        for dump in [&d.core, &d.minidump] {
            let what = format!("{}", dump.display());
            let out = run_layoutdump(&["run", dump.to_str().unwrap(), "--format", "json"]);
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
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
            assert_eq!(r["warnings"], serde_json::json!([cycle]), "{what}");
            assert_eq!(out.status.code(), Some(0), "{what}");
            let tasks = all_tasks(&r);
            assert_eq!(
                tasks.len() as u64,
                d.truth["runtime"]["alive"].as_u64().unwrap(),
                "{what}"
            );
            let by_id = |id: &Value| {
                tasks
                    .iter()
                    .find(|t| t["id"] == *id)
                    .unwrap_or_else(|| panic!("{what}: task {id} not listed"))
            };

            // Each handler, inside its connection task, at its await line, with its leaf;
            // found through hyper's, axum's and tower's futures by generic descent.
            for h in d.truth["handlers"].as_array().unwrap() {
                let task = by_id(&h["task"]);
                let at =
                    |f: &&Value| f["function"] == h["fn"] && f["location"]["line"] == h["line"];
                let hit = task_chains(task)
                    .into_iter()
                    .find(|(frames, _)| frames.iter().any(at))
                    .unwrap_or_else(|| panic!("{what}: handler {h} not shown"));
                let (frames, leaf) = hit;
                assert_eq!(
                    leaf["kind"],
                    leaf_kind(h["leaf"].as_str().unwrap()),
                    "{what}: handler {h}"
                );
                let handler = frames.iter().position(at).unwrap();
                assert_eq!(frames[handler]["via"], "async_fn", "{what}: handler {h}");
                assert!(
                    frames[..handler].iter().any(|f| f["via"] == "generic"),
                    "{what}: handler {h} reached with no generic step"
                );
            }

            // Each client task at its own await line.
            for c in d.truth["clients"].as_array().unwrap() {
                let task = by_id(&c["task"]);
                let shown = task_chains(task).iter().any(|(frames, _)| {
                    frames
                        .iter()
                        .any(|f| f["function"] == c["fn"] && f["location"]["line"] == c["line"])
                });
                assert!(shown, "{what}: client {c} not shown");
            }
            // The HTTP/2 request's response is awaited in hyper's client connection task, on
            // its h2 stream (hyper.layout): a stream the client opened has an odd id.
            let h2_waits: Vec<u64> = tasks
                .iter()
                .flat_map(|t| task_chains(t))
                .filter(|(_, leaf)| leaf["kind"] == "h2 response")
                .filter_map(|(_, leaf)| leaf["fields"]["stream"].as_u64())
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
                let readers: Vec<&Value> = tasks
                    .iter()
                    .filter(|t| {
                        task_chains(t).iter().any(|(_, leaf)| {
                            leaf["kind"] == io && leaf["fields"]["fd"] == conn["fd"]
                        })
                    })
                    .map(|t| &t["id"])
                    .collect();
                assert_eq!(readers.len(), 1, "{what}: connection {conn}: {readers:?}");
                if let Some(id) = conn.get("task") {
                    assert_eq!(readers[0], id, "{what}: connection {conn}");
                }
                // What hyper's HTTP/1 dispatcher says of it (hyper.layout): a request in
                // flight has its head read; a half-sent one has its bytes buffered.
                let dispatcher = tasks
                    .iter()
                    .flat_map(|t| task_chains(t))
                    .filter(|(_, leaf)| leaf["kind"] == io && leaf["fields"]["fd"] == conn["fd"])
                    .flat_map(|(frames, _)| frames)
                    .find(|f| {
                        f["future"]
                            .as_str()
                            .unwrap()
                            .starts_with("hyper::proto::h1::dispatch::Dispatcher<")
                    });
                let half_sent = d.truth["raw_clients"][1]["sent"].as_str().unwrap().len();
                match conn["state"].as_str().unwrap() {
                    "in_flight" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(f["locals"]["reading"], "KeepAlive", "{what}: {conn}");
                        assert_eq!(f["via"], "rule", "{what}: {conn}");
                    }
                    "writing" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(f["locals"]["writing"], "Body", "{what}: {conn}");
                        // Its other branch: the body, a file that waits on nothing.
                        let file_idle = tasks.iter().flat_map(|t| task_chains(t)).any(|(_, l)| {
                            l["kind"] == "file (idle)" && l["fields"]["fd"] == conn["file_fd"]
                        });
                        assert!(file_idle, "{what}: {conn}: no idle file");
                    }
                    "reading" => {
                        let f = dispatcher.unwrap_or_else(|| panic!("{what}: {conn}"));
                        assert_eq!(f["locals"]["reading"], "Init", "{what}: {conn}");
                        assert_eq!(f["locals"]["request_bytes"], half_sent, "{what}: {conn}");
                    }
                    _ => {}
                }
            }

            // The future main gives to block_on, at its await line: in release DWARF has
            // no location for it, and it is found in block_on's stack frame.
            let want = &d.truth["block_on"];
            let block_on = r["block_on"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| {
                    b["backtrace"].as_array().unwrap().iter().any(|f| {
                        f["function"] == want["fn"] && f["location"]["line"] == want["line"]
                    })
                })
                .unwrap_or_else(|| panic!("{what}: block_on {want} not shown: {}", r["block_on"]));
            if profile == Profile::Release {
                let how = block_on["found_by"].as_str().unwrap_or_default();
                assert!(how.contains("stack frame"), "{what}: found by {how:?}");
            }

            // Who holds each lock: the holder task and both deadlocked tasks, by the guards
            // they keep across an await; each /lock handler's task waits for the holder.
            let holds_lock = |id: &Value| {
                by_id(id)["holds"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["kind"] == "lock"))
            };
            let holder = &d.truth["lock_holder"]["task"];
            assert!(holds_lock(holder), "{what}: task {holder}");
            for t in dl {
                assert!(holds_lock(&t["task"]), "{what}: {t}");
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
                let holder = by_id(&Value::from(to));
                assert!(
                    holder["holds"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|h| h["kind"] == "oneshot sender")),
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

            grpc_matches_ground_truth(&what, &d.truth["grpc"], &tasks, &dot);

            // Unknown leaves: at most 5% of all (the target).
            let leaves: Vec<&Value> = tasks
                .iter()
                .flat_map(|t| task_chains(t).into_iter().map(|(_, l)| l))
                .collect();
            let unknown: Vec<&Value> = leaves
                .iter()
                .copied()
                .filter(|l| l["kind"] == "unknown")
                .collect();
            assert!(
                unknown.len() * 20 <= leaves.len(),
                "{what}: {} of {} leaves unknown: {unknown:?}",
                unknown.len(),
                leaves.len()
            );
        }
    }
}

/// Whether `frame` is the gRPC handler or client function the fixture names: a free fn by
/// its path, an `#[async_trait]` method by the async block inside it (in an impl the
/// program cannot name).
fn is_grpc_fn(frame: &Value, want: &Value) -> bool {
    let function = frame["function"].as_str().unwrap_or_default();
    let name = want["fn"].as_str().unwrap();
    let named = if want["async_trait"] == true {
        function.starts_with("web_service::grpc::{impl#")
            && function.ends_with(&format!("}}::{name}::{{async block#0}}"))
    } else {
        function == name
    };
    named && frame["location"]["line"] == want["line"]
}

/// The tonic server and clients: each handler in its h2 stream's task at its await line,
/// the streaming ones on their h2 stream; each client at its call; the call queued behind
/// a concurrency limit waits for the buffer worker, which waits for the call in flight.
fn grpc_matches_ground_truth(what: &str, truth: &Value, tasks: &[&Value], dot: &str) {
    let by_id = |id: &Value| {
        *tasks
            .iter()
            .find(|t| t["id"] == *id)
            .unwrap_or_else(|| panic!("{what}: gRPC task {id} not listed"))
    };
    for h in truth["handlers"].as_array().unwrap() {
        let chains = task_chains(by_id(&h["task"]));
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
            assert_eq!(frames[at]["via"], "async_fn", "{what}: {h}");
            leaf
        };
        assert_eq!(leaf["kind"], h["leaf"], "{what}: gRPC handler {h}");
    }
    let edges_from = |task: &Value| -> Vec<u64> {
        let from = format!("t{task} -> t");
        dot.lines()
            .filter_map(|l| l.trim().strip_prefix(&from))
            .filter_map(|rest| rest.trim_end_matches(';').parse().ok())
            .collect()
    };
    for c in truth["clients"].as_array().unwrap() {
        let chains = task_chains(by_id(&c["task"]));
        let (_, leaf) = chains
            .iter()
            .find(|(frames, _)| frames.iter().any(|f| is_grpc_fn(f, c)))
            .unwrap_or_else(|| panic!("{what}: gRPC client {c} not shown"));
        let want = match c["leaf"].as_str().unwrap() {
            "response" | "queued" => "oneshot receive",
            other => other,
        };
        assert_eq!(leaf["kind"], want, "{what}: gRPC client {c}");
        if c["leaf"] != "queued" {
            continue;
        }
        // Queued: the worker keeps the reply sender, and waits for the semaphore permit
        // the call in flight holds.
        let workers = edges_from(&c["task"]);
        assert_eq!(workers.len(), 1, "{what}: {c} waits for {workers:?}\n{dot}");
        let worker = by_id(&Value::from(workers[0]));
        let frames = worker["backtrace"].as_array().unwrap();
        assert!(
            frames[0]["future"]
                .as_str()
                .unwrap()
                .starts_with("tower::buffer::worker::Worker<"),
            "{what}: {c} waits for task {}",
            worker["id"]
        );
        assert_eq!(frames[0]["locals"]["waiting_for"], "service", "{what}");
        assert_eq!(worker["blocked_on"]["kind"], "semaphore", "{what}");
        assert_eq!(
            edges_from(&worker["id"]),
            [c["waits_behind"].as_u64().unwrap()],
            "{what}: the worker waits for the call in flight\n{dot}"
        );
    }
    // The server's task, at its await, accepting on its listener.
    let server = &truth["server"];
    let accepts = task_chains(by_id(&server["task"]))
        .into_iter()
        .any(|(frames, leaf)| {
            frames
                .iter()
                .any(|f| f["function"] == server["fn"] && f["location"]["line"] == server["line"])
                && leaf["kind"] == "read"
                && leaf["fields"]["fd"] == server["fd"]
        });
    assert!(accepts, "{what}: gRPC server {server}");
}
