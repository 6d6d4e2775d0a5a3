//! Model Context Protocol servers for the `mcp` tool: the protocol (`protocol`), the two
//! transports (`stdio`, `http`), and [`Servers`], the run's registry of the servers it
//! started (docs/tools.md, "mcp").
//!
//! A server is started the first time a call needs it, once per run, and shared by every call
//! to it: one connection, requests multiplexed by id. Starting it is finding its era (the
//! `server/discover` probe, or the `initialize` handshake) and the full `tools/list`, kept for
//! the run so that every call carries the same list and the committer records it once
//! (docs/ledger.md). The engine stops every server when
//! the run ends, however it ends; a replay never reaches this module.

pub mod http;
pub mod protocol;
pub mod stdio;

use crate::cancel::Cancel;
use crate::net::Net;
use protocol::{Era, McpError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a server may take to start and answer the probe (or `initialize`) and `tools/list`,
/// unless its `startup_timeout` says otherwise (`npx` may download the package first).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping server is given at each step (stdin closed, then SIGTERM).
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// A call's default timeout when its node sets none: a call always ends.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// One connection to a running server.
pub trait Connection: Send + Sync {
    /// Sends a request and waits for its result, at most `timeout`; a request that times out
    /// or is interrupted is cancelled (`notifications/cancelled`).
    fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Value, McpError>;
    fn notify(&self, method: &str, params: Value) -> Result<(), McpError>;
    /// Whether the connection can still carry requests.
    fn alive(&self) -> bool;
    /// Notes the era the server speaks (HTTP requests carry it in headers).
    fn set_era(&self, era: Option<&protocol::Era>) {
        let _ = era;
    }
    /// Ends the session; for a process, stops it and its whole group.
    fn stop(&self);
}

/// A server as a call names it, rendered: a named one from `mcp_servers:`, or an inline argv.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// The name in `mcp_servers:`, or the program of an inline argv.
    pub name: String,
    pub transport: Transport,
    pub startup_timeout: Duration,
    /// Calls in flight to it at once, at most.
    pub max_concurrency: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    Stdio(stdio::Launch),
    Http(http::Endpoint),
}

impl Server {
    /// Reads the rendered `server` argument: a mapping (a named server, as validation
    /// resolved it) or an argv.
    pub fn from_arg(value: &Value) -> Result<Server, String> {
        match value {
            Value::Array(argv) => {
                let argv = strings(argv, "`server`")?;
                if argv.is_empty() {
                    return Err("`server` is an empty argv".into());
                }
                let name = argv.join(" ");
                Ok(Server {
                    name,
                    transport: Transport::Stdio(stdio::Launch {
                        argv,
                        env: Vec::new(),
                        cwd: None,
                    }),
                    startup_timeout: STARTUP_TIMEOUT,
                    max_concurrency: None,
                })
            }
            Value::Object(def) => Server::from_definition(def),
            _ => Err("`server` is neither a server of `mcp_servers` nor an argv".into()),
        }
    }

    fn from_definition(def: &Map<String, Value>) -> Result<Server, String> {
        let name = def
            .get("name")
            .and_then(Value::as_str)
            .ok_or("the server has no name")?
            .to_string();
        let pairs = |key: &str| -> Result<Vec<(String, String)>, String> {
            match def.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), value_of(v, &name, key, k)?)))
                    .collect(),
                Some(_) => Err(format!("server `{name}`: `{key}` is not a mapping")),
            }
        };
        let transport = match (def.get("command"), def.get("url")) {
            (Some(Value::Array(argv)), None) => Transport::Stdio(stdio::Launch {
                argv: strings(argv, "`command`")?,
                env: pairs("env")?,
                cwd: def.get("cwd").and_then(Value::as_str).map(str::to_string),
            }),
            (None, Some(Value::String(url))) => Transport::Http(http::Endpoint {
                url: url.clone(),
                headers: pairs("headers")?,
            }),
            _ => return Err(format!("server `{name}` has neither `command` nor `url`")),
        };
        let startup_timeout = match def.get("startup_timeout").and_then(Value::as_str) {
            Some(text) => crate::syntax::duration::parse(text)
                .ok_or_else(|| format!("server `{name}`: `startup_timeout` is not a duration"))?,
            None => STARTUP_TIMEOUT,
        };
        let max_concurrency = def
            .get("max_concurrency")
            .and_then(Value::as_u64)
            .map(|n| n.max(1) as usize);
        Ok(Server {
            name,
            transport,
            startup_timeout,
            max_concurrency,
        })
    }

    /// What tells two servers apart in the registry: everything that starts or reaches it.
    fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// A value of `env` or `headers`: as written, or `{ env: NAME }`, the value of kairos's
/// environment variable NAME (so a credential is never written in the workflow, nor recorded).
fn value_of(v: &Value, server: &str, key: &str, name: &str) -> Result<String, String> {
    match v.get("env").and_then(Value::as_str) {
        Some(var) => std::env::var(var).map_err(|_| {
            format!("server `{server}`: `{key}.{name}`: environment variable `{var}` is not set")
        }),
        None => Ok(crate::tools::word(v)),
    }
}

fn strings(items: &[Value], what: &str) -> Result<Vec<String>, String> {
    if items.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(items.iter().map(crate::tools::word).collect())
}

/// A server started for the run: its connection, the era it speaks, and its tools.
pub struct Running {
    pub connection: Box<dyn Connection>,
    pub era: Era,
    /// `tools/list`, every page, as the server gave it when it started.
    pub tools: Value,
}

/// A server's place in the registry: started at most once at a time, and its first listing
/// kept for the run even if it has to be started again.
#[derive(Default)]
struct Slot {
    running: Mutex<Option<Arc<Running>>>,
    listing: OnceLock<Value>,
    /// Calls in flight, for `max_concurrency`.
    in_flight: Mutex<usize>,
    freed: Condvar,
}

/// The run's servers: started lazily, shared by the calls, stopped by [`Servers::stop`] (or
/// when the last clone is dropped). Cheap to clone; clones share the servers.
#[derive(Clone, Default)]
pub struct Servers(Arc<Registry>);

#[derive(Default)]
struct Registry {
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Set once the run has ended: no server starts after that.
    stopped: Mutex<bool>,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call's result: the `tools/call` result and the server's listing.
pub struct Called {
    pub result: Value,
    /// The run's first `tools/list` of the server.
    pub tools: Value,
}

impl Servers {
    /// Calls `tool` on `server`, starting the server if this run has not yet.
    pub fn call(
        &self,
        server: &Server,
        tool: &str,
        arguments: &Value,
        timeout: Duration,
        net: &Net,
        cancel: &Cancel,
    ) -> Result<Called, McpError> {
        // The timeout bounds the wait for a place, then the call; starting the server has its
        // own bound (`startup_timeout`), as a slow first start is the server's, not the call's.
        let slot = self.slot(server);
        let waited = Instant::now() + timeout;
        let _permit = Permit::take(&slot, server.max_concurrency, waited, cancel, timeout)?;
        let running = self.running(&slot, server, net, cancel)?;
        let tools = slot.listing.get_or_init(|| running.tools.clone()).clone();
        let params = running.era.stamp(protocol::call_params(tool, arguments));
        let result = running
            .connection
            .request("tools/call", params, timeout, cancel)?;
        Ok(Called { result, tools })
    }

    /// The server's `tools/list` (the run's first), starting the server if this run has not
    /// yet: what an `agent:` gives its model as the tools it may call (docs/agents.md).
    pub fn list(
        &self,
        server: &Server,
        timeout: Duration,
        net: &Net,
        cancel: &Cancel,
    ) -> Result<Value, McpError> {
        let slot = self.slot(server);
        let waited = Instant::now() + timeout;
        let _permit = Permit::take(&slot, server.max_concurrency, waited, cancel, timeout)?;
        let running = self.running(&slot, server, net, cancel)?;
        Ok(slot.listing.get_or_init(|| running.tools.clone()).clone())
    }

    fn slot(&self, server: &Server) -> Arc<Slot> {
        let mut slots = lock(&self.0.slots);
        Arc::clone(slots.entry(server.key()).or_default())
    }

    /// The server's connection, started (or started again, after it died) under the slot's
    /// lock, so that concurrent first calls start it once.
    fn running(
        &self,
        slot: &Slot,
        server: &Server,
        net: &Net,
        cancel: &Cancel,
    ) -> Result<Arc<Running>, McpError> {
        let mut running = lock(&slot.running);
        if let Some(r) = running.as_ref().filter(|r| r.connection.alive()) {
            return Ok(Arc::clone(r));
        }
        if let Some(dead) = running.take() {
            dead.connection.stop();
        }
        if *lock(&self.0.stopped) {
            return Err(McpError::Closed("the run has ended".into()));
        }
        let started = Arc::new(start(server, net, cancel)?);
        *running = Some(Arc::clone(&started));
        Ok(started)
    }

    /// Stops every server the run started; later calls fail.
    pub fn stop(&self) {
        *lock(&self.0.stopped) = true;
        let slots: Vec<Arc<Slot>> = lock(&self.0.slots).values().cloned().collect();
        for slot in slots {
            if let Some(running) = lock(&slot.running).take() {
                running.connection.stop();
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for slot in lock(&self.slots).values() {
            if let Some(running) = lock(&slot.running).take() {
                running.connection.stop();
            }
        }
    }
}

/// Starts a server: spawns or reaches it, finds its era ([`negotiate`]), and reads every page
/// of `tools/list`.
fn start(server: &Server, net: &Net, cancel: &Cancel) -> Result<Running, McpError> {
    let timeout = server.startup_timeout;
    let deadline = Instant::now() + timeout;
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(McpError::Timeout(timeout))
        } else {
            Ok(left)
        }
    };
    let connection: Box<dyn Connection> = match &server.transport {
        Transport::Stdio(launch) => Box::new(stdio::StdioConnection::spawn(launch)?),
        Transport::Http(endpoint) => {
            Box::new(http::HttpConnection::new(net.clone(), endpoint.clone()))
        }
    };
    let started = (|| {
        let era = negotiate(connection.as_ref(), left()?, cancel)?;
        let tools = protocol::list_tools(|cursor| {
            let params = era.stamp(protocol::list_params(cursor));
            connection.request("tools/list", params, left()?, cancel)
        })?;
        Ok((era, Value::Array(tools)))
    })();
    match started {
        Ok((era, tools)) => Ok(Running {
            connection,
            era,
            tools,
        }),
        Err(e) => {
            connection.stop();
            Err(match e {
                McpError::Timeout(_) => McpError::Transport(format!(
                    "server `{}` did not start within {} (`startup_timeout`)",
                    server.name,
                    crate::syntax::duration::format(timeout)
                )),
                e => e,
            })
        }
    }
}

/// Finds the era a server speaks: the `server/discover` probe, then, for a server that does
/// not answer it as a stateless one, the `initialize` handshake and
/// `notifications/initialized`.
fn negotiate(
    connection: &dyn Connection,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Era, McpError> {
    let deadline = Instant::now() + timeout;
    connection.set_era(Some(&Era::Modern));
    let probe = timeout.min(protocol::DISCOVER_TIMEOUT);
    let answer = connection.request(
        "server/discover",
        protocol::discover_params(),
        probe,
        cancel,
    );
    if let Some(era) = protocol::discovered(answer)? {
        return Ok(era);
    }
    connection.set_era(None);
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(McpError::Timeout(timeout));
    }
    let init = connection.request("initialize", protocol::initialize_params(), left, cancel)?;
    let era = Era::Handshake(protocol::negotiated(&init)?);
    connection.set_era(Some(&era));
    connection.notify("notifications/initialized", Value::Object(Map::new()))?;
    Ok(era)
}

/// A place among a server's calls in flight, under its `max_concurrency`.
struct Permit<'a>(Option<&'a Slot>);

impl<'a> Permit<'a> {
    fn take(
        slot: &'a Slot,
        limit: Option<usize>,
        deadline: Instant,
        cancel: &Cancel,
        timeout: Duration,
    ) -> Result<Self, McpError> {
        let Some(limit) = limit else {
            return Ok(Permit(None));
        };
        let mut n = lock(&slot.in_flight);
        while *n >= limit {
            if cancel.killed() {
                return Err(McpError::Interrupted);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(McpError::Timeout(timeout));
            }
            n = slot
                .freed
                .wait_timeout(n, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *n += 1;
        Ok(Permit(Some(slot)))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            *lock(&slot.in_flight) -= 1;
            slot.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_server_is_read_from_its_definition_or_an_argv() {
        let inline = Server::from_arg(&json!(["mcp-files", "--root", "."])).unwrap();
        assert_eq!(inline.name, "mcp-files --root .");
        assert_eq!(
            inline.transport,
            Transport::Stdio(stdio::Launch {
                argv: vec!["mcp-files".into(), "--root".into(), ".".into()],
                env: Vec::new(),
                cwd: None,
            })
        );
        let named = Server::from_arg(&json!({
            "name": "api",
            "url": "https://mcp.example.com/mcp",
            "headers": { "X-Team": "docs" },
            "startup_timeout": "5s",
            "max_concurrency": 2,
        }))
        .unwrap();
        assert_eq!(named.name, "api");
        assert_eq!(named.startup_timeout, Duration::from_secs(5));
        assert_eq!(named.max_concurrency, Some(2));
        assert!(matches!(
            &named.transport,
            Transport::Http(e) if e.headers == [("X-Team".to_string(), "docs".to_string())]
        ));
        for bad in [
            json!("fs"),
            json!([]),
            json!({ "name": "x" }),
            json!({ "command": ["a"] }),
        ] {
            assert!(Server::from_arg(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_value_from_the_environment_must_be_set() {
        let missing = Server::from_arg(&json!({
            "name": "s",
            "command": ["x"],
            "env": { "TOKEN": { "env": "KAIROS_UNIT_TEST_SURELY_UNSET" } },
        }));
        let e = missing.unwrap_err();
        assert!(
            e.contains("`env.TOKEN`") && e.contains("KAIROS_UNIT_TEST_SURELY_UNSET"),
            "{e}"
        );
    }

    #[test]
    fn a_stopped_registry_starts_nothing() {
        let servers = Servers::default();
        servers.stop();
        let server = Server::from_arg(&json!(["true"])).unwrap();
        let called = servers.call(
            &server,
            "t",
            &Value::Null,
            Duration::from_secs(5),
            &Net::default(),
            &Cancel::default(),
        );
        assert!(matches!(called, Err(McpError::Closed(m)) if m.contains("the run has ended")));
    }

    #[test]
    fn max_concurrency_holds_a_call_until_a_place_frees() {
        let slot = Slot::default();
        let cancel = Cancel::default();
        let soon = Instant::now() + Duration::from_millis(100);
        let first = Permit::take(&slot, Some(1), soon, &cancel, Duration::from_millis(100));
        assert!(first.is_ok());
        let second = Permit::take(&slot, Some(1), soon, &cancel, Duration::from_millis(100));
        assert!(matches!(second, Err(McpError::Timeout(_))));
        drop(first);
        let later = Instant::now() + Duration::from_millis(100);
        assert!(Permit::take(&slot, Some(1), later, &cancel, Duration::from_millis(100)).is_ok());
    }
}
