//! Three `bourse serve --cluster kafka` nodes on one tansu broker (SQLite storage, which
//! survives a broker restart) on 127.0.0.1, driven through their HTTP APIs.
//!
//! - Clients send deposits, withdrawals, orders and cancels round-robin to all three nodes:
//!   afterwards the nodes' state hashes are equal, every acknowledged request is applied
//!   exactly once (the histories hold each key once), and every asset is conserved.
//! - One node is SIGKILLed under that load, round after round (`BOURSE_CLUSTER_KILL_ROUNDS`,
//!   20 by default): its clients retry unanswered requests with the same key through another
//!   node; the node restarts from its snapshot and journal and catches up.
//! - The broker is SIGKILLed and restarted under load: the nodes answer 503 meanwhile, then
//!   resume, and nothing acknowledged is lost.
//! - One node's state is altered through the `cluster::tamper` fail point: the next
//!   checkpoint stops it (exit 70, both hashes); the other two go on.

mod scale;
mod tier;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bourse_feed::tansu::TansuBroker;
use bourse_tests::client::{Client, dec, eventually, header, json, try_http};
use bourse_tests::process::{Server, http_addr};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::BOURSE;

const ADMIN: &str = "cluster-admin-token-0123";
/// How long one request may take before the client gives up on that node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A node: its id, HTTP address and data directory, and the process while it runs.
struct Node {
    addr: String,
    dir: PathBuf,
    server: Option<Server>,
    /// What runs `bourse` (the binary, or a script that runs it in a network namespace).
    bin: PathBuf,
}

/// A broker and three nodes (see the module docs).
struct Cluster {
    broker: TansuBroker,
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
    /// Settings every node gets after the cluster's own.
    extra: Vec<String>,
    /// The network namespace node 2 runs in, for the tests that cut its link to the broker.
    net: Option<Net>,
}

/// Node 2 in a network namespace of its own, with two links to the others: one to the
/// broker (10.77.1.0/24), one for HTTP (10.77.2.0/24, where the other nodes listen too).
/// Cutting the first leaves the second: the node keeps serving its clients.
struct Net {
    ns: String,
    /// The namespace's end of the broker link.
    broker_link: String,
    /// Runs `bourse` inside the namespace.
    wrapper: PathBuf,
}

const NET_BROKER: &str = "10.77.1.1";
const NET_HTTP: &str = "10.77.2.1";
const NET_HTTP_NODE: &str = "10.77.2.2";

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("run ip (iproute2)");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

impl Net {
    fn create(root: &std::path::Path) -> Net {
        let id = std::process::id() % 100_000;
        let ns = format!("bourse{id}");
        ip(&["netns", "add", &ns]);
        let net = Net {
            ns: ns.clone(),
            broker_link: format!("bk{id}n"),
            wrapper: root.join("bourse-in-netns"),
        };
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        for (host_end, ns_end, host_addr, ns_addr) in [
            (
                format!("bk{id}h"),
                net.broker_link.clone(),
                NET_BROKER,
                "10.77.1.2",
            ),
            (
                format!("hp{id}h"),
                format!("hp{id}n"),
                NET_HTTP,
                NET_HTTP_NODE,
            ),
        ] {
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ]);
            ip(&["link", "set", &ns_end, "netns", &ns]);
            ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_end]);
            ip(&["link", "set", &host_end, "up"]);
            let in_ns = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all);
            };
            in_ns(&["addr", "add", &format!("{ns_addr}/24"), "dev", &ns_end]);
            in_ns(&["link", "set", &ns_end, "up"]);
        }
        std::fs::write(
            &net.wrapper,
            format!("#!/bin/sh\nexec ip netns exec {ns} {BOURSE} \"$@\"\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&net.wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        net
    }

    /// The node's end of the broker link goes down, like a pulled cable (this kernel has
    /// no netem or tc filters to drop packets silently): its packets to the broker go
    /// nowhere. HTTP is another link.
    fn cut(&self) {
        self.set_broker_link("down");
    }

    fn heal(&self) {
        self.set_broker_link("up");
    }

    fn set_broker_link(&self, state: &str) {
        let link = &self.broker_link;
        ip(&["netns", "exec", &self.ns, "ip", "link", "set", link, state]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pairs with an end in it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        Cluster::start_on(extra, false)
    }

    /// With `netns`, node 2 runs in a network namespace of its own ([`Net`]).
    fn start_on(extra: &[&str], netns: bool) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let broker_dir = root.path().join("broker");
        std::fs::create_dir_all(&broker_dir).unwrap();
        let net = netns.then(|| Net::create(root.path()));
        let broker = match net {
            Some(_) => TansuBroker::start_persistent_on(&broker_dir, NET_BROKER).unwrap(),
            None => TansuBroker::start_persistent(&broker_dir).unwrap(),
        };
        let nodes = (0..3)
            .map(|id| {
                let (host, bin) = match &net {
                    Some(net) if id == 2 => (NET_HTTP_NODE, net.wrapper.clone()),
                    Some(_) => (NET_HTTP, PathBuf::from(BOURSE)),
                    None => ("127.0.0.1", PathBuf::from(BOURSE)),
                };
                Node {
                    addr: format!("{host}:{}", free_port()),
                    dir: root.path().join(format!("node{id}")),
                    server: None,
                    bin,
                }
            })
            .collect();
        let mut cluster = Cluster {
            broker,
            _root: root,
            nodes,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            net,
        };
        for id in 0..3 {
            cluster.start_node(id, &[]);
        }
        for id in 0..3 {
            cluster.wait_fresh(id);
        }
        cluster
    }

    fn args(&self, id: usize) -> Vec<String> {
        let peers: Vec<String> = (0..self.nodes.len())
            .filter(|&other| other != id)
            .map(|other| format!("http://{}", self.nodes[other].addr))
            .collect();
        let mut args: Vec<String> = [
            "--feed",
            "off",
            "--liquidity",
            "false",
            "--cluster",
            "kafka",
            "--cluster-topic-check",
            "development",
            "--admin-token",
            ADMIN,
            "--checkpoint-every",
            "500",
            "--snapshot-every",
            "2000",
            // Generous, so that a node slowed down by the other tests sharing the two cores
            // does not refuse the requests these tests make directly; the tests of the bound
            // set their own.
            "--max-staleness-ms",
            "5000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend([
            "--node-id".to_owned(),
            id.to_string(),
            "--kafka-brokers".to_owned(),
            self.broker.brokers(),
            "--http-addr".to_owned(),
            self.nodes[id].addr.clone(),
            "--cluster-peers".to_owned(),
            peers.join(","),
        ]);
        args.extend(self.extra.iter().cloned());
        args
    }

    /// A new node with an empty data directory, `args` added to its settings.
    fn add_node(&mut self, args: &[&str]) -> usize {
        let id = self.nodes.len();
        let dir = self.nodes[0].dir.with_file_name(format!("node{id}"));
        self.nodes.push(Node {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            server: None,
            bin: PathBuf::from(BOURSE),
        });
        let mut all = self.args(id);
        all.extend(args.iter().map(|s| (*s).to_owned()));
        self.spawn(id, &all, &[]);
        id
    }

    fn start_node(&mut self, id: usize, env: &[(&str, &str)]) {
        let args = self.args(id);
        self.spawn(id, &args, env);
    }

    fn spawn(&mut self, id: usize, args: &[String], env: &[(&str, &str)]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server =
            Server::start_with_env(&self.nodes[id].bin, &self.nodes[id].dir, &args, env);
        assert_eq!(http_addr(&mut server), self.nodes[id].addr);
        self.nodes[id].server = Some(server);
    }

    fn kill(&mut self, id: usize) {
        if let Some(mut server) = self.nodes[id].server.take() {
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        }
    }

    fn client(&self, id: usize) -> Client {
        Client {
            addr: self.nodes[id].addr.clone(),
        }
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Waits until node `id` says it has the whole log.
    fn wait_fresh(&self, id: usize) {
        let client = self.client(id);
        eventually(&format!("node {id} to have the whole log"), || {
            let (status, body) = client.call("GET", "/api/v1/cluster/node", None, &Value::Null);
            (status == 200 && body["fresh"] == json!(true)).then_some(())
        });
    }

    /// Waits until the running nodes have applied the same log to its end; their common
    /// state hash.
    fn converged(&self) -> String {
        eventually("the nodes to apply the same log", || {
            let statuses: Vec<Value> = self
                .nodes
                .iter()
                .filter(|n| n.server.is_some())
                .map(|n| admin_status(&n.addr))
                .collect::<Option<_>>()?;
            let first = &statuses[0];
            let same = statuses
                .iter()
                .all(|s| s["appliedSeq"] == first["appliedSeq"]);
            // Applied to the log's end: nothing in flight (the callers wait for answers).
            let end = log_end(&self.nodes[0].addr)?;
            (same && first["appliedSeq"] == json!(end)).then(|| {
                let hashes: BTreeSet<String> = statuses
                    .iter()
                    .map(|s| s["stateHash"].to_string())
                    .collect();
                assert_eq!(hashes.len(), 1, "the nodes' states differ: {statuses:?}");
                first["stateHash"].as_str().unwrap().to_owned()
            })
        })
    }
}

fn admin_status(addr: &str) -> Option<Value> {
    let auth = format!("Bearer {ADMIN}");
    let (status, _, body) = try_http(
        addr,
        "GET",
        "/api/v1/admin/status",
        &[("Authorization", &auth)],
        "",
        REQUEST_TIMEOUT,
    )
    .ok()?;
    (status == 200).then(|| json(&body))
}

fn log_end(addr: &str) -> Option<u64> {
    let (status, _, body) = try_http(
        addr,
        "GET",
        "/api/v1/cluster/node",
        &[],
        "",
        REQUEST_TIMEOUT,
    )
    .ok()?;
    let body = json(&body);
    (status == 200 && body["fresh"] == json!(true))
        .then(|| body["logEnd"].as_u64())
        .flatten()
}

/// Sends one request to the nodes in turn from `first` until one answers with something
/// other than 503 (or no answer at all: a killed node, a cut link). A retry carries the same
/// body, so the same idempotency key. Returns the answer and how many tries it took.
fn call_until_answered(
    addrs: &[String],
    first: usize,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for attempt in 0.. {
        let client = Client {
            addr: addrs[(first + attempt) % addrs.len()].clone(),
        };
        match client.try_call_with_head(method, path, token, body, REQUEST_TIMEOUT) {
            Ok((503, head, answer)) => {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["unavailable", "stale", "busy"].contains(&code),
                    "{method} {path}: 503 {answer}"
                );
                assert!(header(&head, "retry-after").is_some() || code == "busy");
            }
            Ok((status, _, answer)) => return (status, answer, attempt + 1),
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "{method} {path} unanswered by every node for 120 s"
        );
        // Every node refused or is down: give the cluster a moment (a bound on the retry
        // rate, not a wait for anything).
        if (attempt + 1) % addrs.len() == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unreachable!()
}

/// What the clients had acknowledged.
#[derive(Default)]
struct Acknowledged {
    /// Deposits and withdrawals by `requestId`: (currency, signed amount).
    funds: BTreeMap<String, (String, Decimal)>,
    /// Orders by `clientOrderId`.
    orders: BTreeSet<String>,
    /// Answers that needed another node.
    retried: usize,
}

/// An account trading through every node: `ops` requests, round-robin over the nodes.
fn trade(addrs: &[String], token: &str, name: &str, ops: usize, stop: &AtomicBool) -> Acknowledged {
    let mut acked = Acknowledged::default();
    let mut open: Vec<u64> = Vec::new();
    for i in 0..ops {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let node = i % addrs.len();
        let (method, path, body) = match i % 5 {
            0 => (
                "PUT",
                "/api/v1/funds".to_owned(),
                json!({"amount": "10.00", "currency": "USD", "type": "bank",
                       "requestId": format!("{name}-d{i}"),
                       "additionalInformation": {"accountNumber": "DE89370400440532013000"}}),
            ),
            1 | 3 => {
                let side = if (i / 5) % 2 == 0 { "buy" } else { "sell" };
                let cents = 10_000 + (i % 7) as i64 - 3;
                (
                    "POST",
                    format!("/api/v1/product/{side}"),
                    json!({"symbol": "AAPL", "quantity": "1", "type": "limit",
                           "price": format!("{}.{:02}", cents / 100, cents % 100),
                           "clientOrderId": format!("{name}-o{i}")}),
                )
            }
            2 => match open.pop() {
                Some(order) => ("DELETE", format!("/api/v1/orders/{order}"), Value::Null),
                None => continue,
            },
            _ => (
                "POST",
                "/api/v1/funds".to_owned(),
                json!({"amount": "1.00", "currency": "USD",
                       "requestId": format!("{name}-w{i}"),
                       "destinationDetails": {"iban": "DE00"}}),
            ),
        };
        let (status, answer, tries) =
            call_until_answered(addrs, node, method, &path, Some(token), &body);
        acked.retried += usize::from(tries > 1);
        match (method, status) {
            ("PUT", 200) => {
                acked.funds.insert(
                    body["requestId"].as_str().unwrap().to_owned(),
                    ("USD".to_owned(), dec(&body["amount"])),
                );
            }
            ("POST", 200) if path == "/api/v1/funds" => {
                acked.funds.insert(
                    body["requestId"].as_str().unwrap().to_owned(),
                    ("USD".to_owned(), -dec(&body["amount"])),
                );
            }
            ("POST", 200 | 201) => {
                acked
                    .orders
                    .insert(body["clientOrderId"].as_str().unwrap().to_owned());
                if answer["status"] == "open" || answer["status"] == "partially_filled" {
                    open.insert(0, answer["orderId"].as_u64().unwrap());
                }
            }
            // A refused withdrawal (too little available), a cancel of an order already
            // filled or cancelled: answered, nothing applied.
            ("POST", 422) | ("DELETE", 200 | 404 | 409) => {}
            _ => panic!("{method} {path} {body}: {status} {answer}"),
        }
    }
    acked
}

/// An account with 1,000 USD and 1,000 AAPL deposited through node `node`.
fn funded_account(client: &Client, name: &str) -> (String, Acknowledged) {
    let token = client.account(name);
    let mut acked = Acknowledged::default();
    for (currency, amount) in [("USD", "1000.00"), ("AAPL", "1000")] {
        let request = format!("{name}-fund-{currency}");
        client.deposit(&token, amount, currency, &request);
        acked
            .funds
            .insert(request, (currency.to_owned(), amount.parse().unwrap()));
    }
    (token, acked)
}

/// `accounts` accounts trading `ops` requests each, concurrently, while `during` runs on
/// this thread (it may kill and restart nodes); then checks every acknowledged request
/// against the histories and the balances, and that the nodes agree. Returns the state hash.
///
/// With `stop_after`, the clients stop when `during` returns, whatever `ops` says.
fn run_workload(
    cluster: &mut Cluster,
    accounts: usize,
    ops: usize,
    stop_after: bool,
    during: impl FnOnce(&mut Cluster, &AtomicUsize),
) -> (String, usize) {
    let funded: Vec<(String, String, Acknowledged)> = (0..accounts)
        .map(|a| {
            let name = format!("acct{a}");
            let (token, acked) = funded_account(&cluster.client(a % 3), &name);
            (name, token, acked)
        })
        .collect();
    let addrs = cluster.addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = funded
        .into_iter()
        .map(|(name, token, mut acked)| {
            let addrs = addrs.clone();
            let stop = Arc::clone(&stop);
            let finished = Arc::clone(&finished);
            std::thread::spawn(move || {
                let more = trade(&addrs, &token, &name, ops, &stop);
                acked.funds.extend(more.funds);
                acked.orders.extend(more.orders);
                acked.retried += more.retried;
                finished.fetch_add(1, Ordering::SeqCst);
                (token, acked)
            })
        })
        .collect();
    during(cluster, &finished);
    if stop_after {
        stop.store(true, Ordering::Relaxed);
    }
    let results: Vec<(String, Acknowledged)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let hash = cluster.converged();
    let client = cluster.client(0);
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut expected: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut retried = 0;
    for (token, acked) in &results {
        retried += acked.retried;
        check_exactly_once(&client, token, acked, &mut totals);
        for (currency, amount) in acked.funds.values() {
            *expected.entry(currency.clone()).or_default() += *amount;
        }
    }
    assert_eq!(totals, expected, "every asset is conserved");
    (hash, retried)
}

/// Every acknowledged funds movement and order of an account is in its history exactly
/// once, and nothing else is; adds its balances and the fees it paid to `totals`.
fn check_exactly_once(
    client: &Client,
    token: &str,
    acked: &Acknowledged,
    totals: &mut BTreeMap<String, Decimal>,
) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for movement in all_pages(client, token, "/api/v1/funds/history?limit=500") {
        match movement["kind"].as_str().unwrap() {
            "fee" => {
                *totals
                    .entry(movement["currency"].as_str().unwrap().to_owned())
                    .or_default() += dec(&movement["amount"]);
            }
            _ => {
                *seen
                    .entry(movement["requestId"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    let expected: BTreeMap<String, usize> = acked.funds.keys().map(|k| (k.clone(), 1)).collect();
    assert_eq!(seen, expected, "funds movements applied exactly once");
    let mut orders: BTreeMap<String, usize> = BTreeMap::new();
    for status in ["open", "closed"] {
        let path = format!("/api/v1/orders?status={status}&limit=500");
        for order in all_pages(client, token, &path) {
            *orders
                .entry(order["clientOrderId"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = acked.orders.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(orders, expected, "orders placed exactly once");
    for (currency, available, held) in client.balances(token) {
        *totals.entry(currency).or_default() +=
            available.parse::<Decimal>().unwrap() + held.parse::<Decimal>().unwrap();
    }
}

/// Every item of a paged list (`X-Next-Cursor`).
fn all_pages(client: &Client, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let (status, head, body) = client.call_with_head("GET", &page, Some(token), &Value::Null);
        assert_eq!(status, 200, "{page}: {body}");
        items.extend(body.as_array().unwrap().iter().cloned());
        match header(&head, "x-next-cursor") {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[test]
fn three_nodes_take_requests_round_robin_and_agree() {
    let mut cluster = Cluster::start(&["--checkpoint-every", "100"]);
    run_workload(&mut cluster, 4, 100, false, |_, _| {});
    // What every node shows of the cluster.
    let view = cluster
        .client(1)
        .expect(200, "GET", "/api/v1/cluster", None, Value::Null);
    assert_eq!(view["mode"], "kafka");
    assert_eq!(view["topic"], "bourse.commands.0");
    assert_eq!(view["thisNode"]["node"], 1);
    let peers: BTreeSet<u64> = view["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_u64().unwrap())
        .collect();
    assert_eq!(peers, BTreeSet::from([0, 2]));
    assert!(
        view["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"].as_u64().is_some() && p["nextOffset"].as_u64().is_some()),
        "{view}"
    );
    // A write's answer carries its command's offset in the log, and the node that answered
    // has applied it.
    let client = cluster.client(2);
    let token = client.account("offsets");
    let (status, head, _) =
        client.call_with_head("PUT", "/api/v1/funds", Some(&token), &deposit_body("off-1"));
    assert_eq!(status, 200);
    let offset: u64 = header(&head, "x-log-offset").unwrap().parse().unwrap();
    let node = client.expect(200, "GET", "/api/v1/cluster/node", None, Value::Null);
    assert!(
        node["nextOffset"].as_u64().unwrap() > offset,
        "{node} {offset}"
    );
    assert!(offset > 400, "after the workload's commands: {offset}");
    // The node counts where its commands' time went: each stage no shorter than the one
    // before it.
    let (status, metrics) = bourse_tests::client::http_get(&cluster.nodes[2].addr, "/metrics");
    assert_eq!(status, 200);
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(counter("bourse_cluster_answered_total") >= 100, "{metrics}");
    let appended = counter("bourse_cluster_appended_microseconds_total");
    let read = counter("bourse_cluster_read_microseconds_total");
    let done = counter("bourse_cluster_answered_microseconds_total");
    assert!(
        0 < appended && appended <= read && read <= done,
        "{metrics}"
    );
    // The checkpoints agreed (100 offsets apart; the workload wrote several hundred).
    let agreed = view["thisNode"]["checkpointsAgreed"].as_u64().unwrap();
    assert!(agreed >= 1, "{view}");
    // A clean stop of all three, and a start again: the same state.
    let hash = cluster.converged();
    for id in 0..3 {
        cluster.nodes[id].server.take().unwrap().stop();
    }
    for id in 0..3 {
        cluster.start_node(id, &[]);
    }
    assert_eq!(cluster.converged(), hash);
}

/// Rounds of SIGKILL under load (`BOURSE_CLUSTER_KILL_ROUNDS`, default 20).
#[test]
fn a_node_killed_under_load_restarts_catches_up_and_loses_nothing() {
    let rounds: usize = std::env::var("BOURSE_CLUSTER_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut cluster = Cluster::start(&[]);
    let accounts = 3;
    let (_, retried) = run_workload(
        &mut cluster,
        accounts,
        usize::MAX,
        true,
        |cluster, finished| {
            for round in 0..rounds {
                if finished.load(Ordering::SeqCst) == accounts {
                    break;
                }
                let victim = round % 3;
                let before = admin_status(&cluster.nodes[victim].addr);
                cluster.kill(victim);
                cluster.start_node(victim, &[]);
                cluster.wait_fresh(victim);
                let after = admin_status(&cluster.nodes[victim].addr).unwrap();
                if let Some(before) = before {
                    assert!(
                        after["appliedSeq"].as_u64() >= before["appliedSeq"].as_u64(),
                        "round {round}: node {victim} came back behind where it was"
                    );
                }
            }
        },
    );
    assert!(retried > 0, "the kills made some clients retry elsewhere");
}

#[test]
fn the_broker_killed_and_restarted_under_load_makes_the_nodes_unavailable_then_resume() {
    let mut cluster = Cluster::start(&["--max-staleness-ms", "500"]);
    let accounts = 3;
    let (_, retried) = run_workload(&mut cluster, accounts, 150, false, |cluster, _| {
        cluster.broker.kill_and_restart().unwrap();
    });
    // Whether a request fell into the outage depends on timing; what must hold (nothing lost,
    // nothing twice, the nodes agree) was checked by run_workload.
    eprintln!("requests retried across the broker restart: {retried}");
    // While the broker is down, every node answers writes and authenticated reads 503.
    let client = cluster.client(0);
    let (token, _) = funded_account(&client, "outage");
    cluster.broker.pause().unwrap();
    for id in 0..3 {
        let client = cluster.client(id);
        eventually("a node cut off from the broker to refuse reads", || {
            let (status, body) = client.call("GET", "/api/v1/funds", Some(&token), &Value::Null);
            (status == 503 && body["error"]["code"] == "stale").then_some(())
        });
        let (status, body) = client.call(
            "PUT",
            "/api/v1/funds",
            Some(&token),
            &json!({"amount": "1.00", "currency": "USD", "type": "bank",
                    "requestId": format!("outage-{id}"),
                    "additionalInformation": {"accountNumber": "DE89370400440532013000"}}),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable"))
        );
        // Public market data is still served.
        client.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null);
    }
    cluster.broker.resume().unwrap();
    for id in 0..3 {
        cluster.wait_fresh(id);
    }
    cluster.converged();
    let balances = client.balances(&token);
    assert!(
        balances
            .iter()
            .any(|(c, a, _)| c == "USD" && a == "1000.00"),
        "no write of the outage was applied: {balances:?}"
    );
}

#[test]
fn a_node_whose_state_departs_is_stopped_at_the_next_checkpoint_and_the_others_go_on() {
    let mut cluster = Cluster::start(&[]);
    // Node 2 restarted with its deposits doubled from now on.
    cluster.nodes[2].server.take().unwrap().stop();
    cluster.start_node(2, &[("FAILPOINTS", "cluster::tamper=return(2)")]);
    cluster.wait_fresh(2);
    let client = cluster.client(0);
    let token = client.account("victim");
    // Enough deposits to pass a checkpoint (every 500 offsets).
    for i in 0..520 {
        client.deposit(&token, "1.00", "USD", &format!("t-{i}"));
        if cluster.nodes[2]
            .server
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_some()
        {
            break;
        }
    }
    let mut server = cluster.nodes[2].server.take().unwrap();
    let status = server.child.wait().unwrap();
    let log = server.rest_of_log();
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(
        log.contains("diverged") || log.contains("differs"),
        "the node says why: {log}"
    );
    // The others go on and agree.
    client.deposit(&token, "1.00", "USD", "after");
    let hash = cluster.converged();
    assert_eq!(hash.len(), 32);
}

#[test]
fn a_fourth_node_with_an_empty_directory_joins_from_a_peers_snapshot() {
    let mut cluster = Cluster::start(&["--snapshot-every", "200"]);
    run_workload(&mut cluster, 3, 100, false, |_, _| {});
    let peer = format!("http://{}", cluster.nodes[1].addr);
    // A snapshot record has been applied by every replica by now (200 offsets apart).
    let id = cluster.add_node(&["--join-from", &peer]);
    let log = cluster.nodes[id].server.as_mut().unwrap().log.join("\n");
    assert!(log.contains("installed its snapshot at seq"), "{log}");
    assert!(
        !log.contains("resuming the log at offset 0"),
        "it started from the snapshot, not the log's start: {log}"
    );
    cluster.wait_fresh(id);
    let hash = cluster.converged();
    // It takes requests like the others, and they agree.
    let client = cluster.client(id);
    let token = client.account("newcomer");
    client.deposit(&token, "5.00", "USD", "n-1");
    let after = cluster.converged();
    assert_ne!(after, hash);
    // Its snapshot endpoint is the admin API's.
    let (status, _) = client.call("GET", "/api/v1/admin/snapshot", None, &Value::Null);
    assert_eq!(status, 401);
}

/// An account's available USD as node `client` answers it: `Err(code)` for a 503.
fn usd_or_503(client: &Client, token: &str) -> Result<Decimal, String> {
    let (status, body) = client.call("GET", "/api/v1/funds", Some(token), &Value::Null);
    match status {
        200 => Ok(body["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["currency"] == "USD")
            .map_or(Decimal::ZERO, |row| dec(&row["available"]))),
        503 => Err(body["error"]["code"].as_str().unwrap().to_owned()),
        _ => panic!("GET /funds: {status} {body}"),
    }
}

fn deposit_body(request: &str) -> Value {
    json!({"amount": "1.00", "currency": "USD", "type": "bank", "requestId": request,
           "additionalInformation": {"accountNumber": "DE89370400440532013000"}})
}

/// How many milliseconds the tests' nodes may be behind the log.
const STALENESS_MS: u64 = 500;

#[test]
fn a_node_cut_off_from_the_broker_answers_503_within_its_bound_and_catches_up_after() {
    let cluster = Cluster::start_on(&["--max-staleness-ms", &STALENESS_MS.to_string()], true);
    let (client0, client1, client2) = (cluster.client(0), cluster.client(1), cluster.client(2));
    let (token, _) = funded_account(&client0, "cut");
    cluster.converged();
    let bound = Duration::from_millis(STALENESS_MS);
    let net = cluster.net.as_ref().unwrap();
    net.cut();
    // The other two keep trading; node 2 keeps answering its clients, but never with a
    // balance older than its bound: every deposit acknowledged more than the bound before a
    // read was sent is in what the read shows, or the read is refused as stale.
    let mut acked: Vec<(Instant, Decimal)> = Vec::new();
    let mut total = Decimal::from(1000);
    let (mut stale, mut i) = (0, 0);
    while stale < 20 {
        let writer = if i % 2 == 0 { &client0 } else { &client1 };
        let body = deposit_body(&format!("cut-{i}"));
        writer.expect(200, "PUT", "/api/v1/funds", Some(&token), body);
        total += Decimal::ONE;
        acked.push((Instant::now(), total));
        i += 1;
        let asked = Instant::now();
        match usd_or_503(&client2, &token) {
            Ok(shown) => {
                let owed = acked
                    .iter()
                    .rev()
                    .find(|(at, _)| *at + bound < asked)
                    .map_or(Decimal::ZERO, |(_, t)| *t);
                assert!(
                    shown >= owed,
                    "node 2 showed {shown}, older than its bound ({owed})"
                );
            }
            Err(code) => {
                assert_eq!(code, "stale");
                stale += 1;
            }
        }
    }
    // Its writes are refused, not queued: 503 unavailable with Retry-After.
    let (status, head, body) = client2.call_with_head(
        "PUT",
        "/api/v1/funds",
        Some(&token),
        &deposit_body("cut-node2"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_eq!(header(&head, "retry-after"), Some("1"));
    // Public market data is still served.
    client2.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null);
    // The cut heals: it catches up and agrees.
    net.heal();
    cluster.wait_fresh(2);
    cluster.converged();
    assert_eq!(usd_or_503(&client2, &token), Ok(total));
    let refused = usd_or_503(&client0, &token);
    assert_eq!(refused, Ok(total), "the refused write was not applied");
}

#[test]
fn a_node_stopped_and_continued_answers_stale_rather_than_old_balances() {
    let cluster = Cluster::start(&["--max-staleness-ms", &STALENESS_MS.to_string()]);
    let (client0, client1, client2) = (cluster.client(0), cluster.client(1), cluster.client(2));
    let (token, _) = funded_account(&client0, "sleeper");
    cluster.converged();
    let pid = cluster.nodes[2].server.as_ref().unwrap().pid();
    // SAFETY: kill takes no pointers; the pid is our own running child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // The others go on, for a while longer than the bound.
    let stopped = Instant::now();
    let mut total = Decimal::from(1000);
    let mut i = 0;
    while stopped.elapsed() < Duration::from_millis(4 * STALENESS_MS) {
        let writer = if i % 2 == 0 { &client0 } else { &client1 };
        let body = deposit_body(&format!("stop-{i}"));
        writer.expect(200, "PUT", "/api/v1/funds", Some(&token), body);
        total += Decimal::ONE;
        i += 1;
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // From the first answer on: stale, or the balance with every deposit; never an old one.
    let shown = eventually("node 2 to answer after SIGCONT", || {
        match usd_or_503(&client2, &token) {
            Ok(shown) => Some(shown),
            Err(code) => {
                assert_eq!(code, "stale");
                None
            }
        }
    });
    assert_eq!(shown, total, "node 2 answered an old balance");
    cluster.converged();
}

#[test]
fn the_simulator_runs_on_one_node_and_every_node_charts_its_ticks() {
    let cluster = Cluster::start(&["--feed", "sim", "--sim-rate", "200"]);
    let ticks = |id: usize| -> Vec<Value> {
        let (status, body) = cluster.client(id).call(
            "GET",
            "/api/v1/products/MSFT/ticks?limit=5000",
            None,
            &Value::Null,
        );
        // 404 until the node's replica has applied the catalogue.
        assert!(status == 200 || status == 404, "{status} {body}");
        body.as_array().cloned().unwrap_or_default()
    };
    // A tick node 0 charts reaches the others through the topic, the same tick.
    let tick = eventually("a tick on node 0", || ticks(0).last().cloned());
    for id in 1..3 {
        eventually(&format!("node 0's tick {tick} on node {id}"), || {
            ticks(id).contains(&tick).then_some(())
        });
    }
    let log = |id: usize| cluster.nodes[id].server.as_ref().unwrap().log.join("\n");
    assert!(
        log(0).contains("this node runs the exchange simulator"),
        "{}",
        log(0)
    );
    for id in 0..3 {
        assert!(
            log(id).contains("every partition of the Kafka topic ticks"),
            "{}",
            log(id)
        );
    }
    for id in 1..3 {
        assert!(
            !log(id).contains("runs the exchange simulator"),
            "{}",
            log(id)
        );
    }
}
