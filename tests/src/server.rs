//! A Bourse server started in the test's own process, through the server library
//! ([`bourse_server::Server`]), for every test that needs no process boundary. Settings are
//! given as `bourse serve` takes them on its command line, and read by the same code (flags
//! win over any `BOURSE_*` variable of the machine).

use std::path::Path;

use bourse_pipeline::Handle;
use bourse_server::settings::{self, Invocation};
use bourse_server::{StartReport, Stopped};

/// A running in-process server; shut down cleanly by [`Server::stop`], or when dropped.
pub struct Server {
    server: Option<bourse_server::Server>,
    /// `host:port` of its HTTP API.
    pub addr: String,
}

impl Server {
    /// A server on `dir` without market-data feed and liquidity provider, so that books and
    /// prices hold only what the test does.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let mut quiet = vec!["--feed", "off", "--liquidity", "false"];
        quiet.extend_from_slice(args);
        Server::start_with_market(dir, &quiet)
    }

    /// A server on `dir` with its defaults: the embedded simulator feeds it and the
    /// liquidity provider quotes.
    pub fn start_with_market(dir: &Path, args: &[&str]) -> Server {
        let server = Server::try_start(dir, args).unwrap_or_else(|e| panic!("start: {e}"));
        let addr = server
            .http_addr()
            .unwrap_or_else(|| panic!("the server has no HTTP address"))
            .to_string();
        Server {
            server: Some(server),
            addr,
        }
    }

    /// Starts a server, or says why it could not.
    pub fn try_start(dir: &Path, args: &[&str]) -> Result<bourse_server::Server, String> {
        let mut all: Vec<String> = vec![
            "--data-dir".into(),
            dir.to_str()
                .ok_or("the data directory is not UTF-8")?
                .into(),
            // Any free port: tests run in parallel. A test may override it.
            "--http-addr".into(),
            "127.0.0.1:0".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let loaded = match settings::load(&all) {
            Ok(Invocation::Serve(loaded)) => loaded,
            Ok(Invocation::Help) => return Err("the settings asked for help".into()),
            Err(error) => return Err(format!("configuration error: {error}")),
        };
        bourse_server::Server::start(&loaded.config)
    }

    /// What start-up found and did.
    pub fn report(&self) -> &StartReport {
        self.inner().report()
    }

    /// A handle on the server's pipeline.
    pub fn handle(&self) -> Handle {
        self.inner().handle()
    }

    /// The periodic work of the server's main loop; `Err` once it stopped by itself.
    pub fn poll(&mut self) -> Result<(), Stopped> {
        self.server
            .as_mut()
            .unwrap_or_else(|| panic!("the server was stopped"))
            .poll()
    }

    /// Shuts down cleanly (drain, commit, final snapshot) and returns the summary line;
    /// panics if the shutdown is not clean.
    pub fn stop(mut self) -> String {
        let server = self
            .server
            .take()
            .unwrap_or_else(|| panic!("the server was stopped"));
        server
            .shutdown()
            .unwrap_or_else(|e| panic!("the shutdown was not clean: {e:?}"))
    }

    fn inner(&self) -> &bourse_server::Server {
        self.server
            .as_ref()
            .unwrap_or_else(|| panic!("the server was stopped"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.shutdown();
        }
    }
}

/// `host:port` of the server's HTTP API.
pub fn http_addr(server: &mut Server) -> String {
    server.addr.clone()
}
