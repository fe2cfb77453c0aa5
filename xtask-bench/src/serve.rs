//! `cargo xtask serve [DIR]` (run as `xtask-bench serve`): preview a built site on 127.0.0.1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, ensure};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The site directory. Default: target/site under the current directory.
    dir: Option<PathBuf>,
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8000)]
    port: u16,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => crate::current_dir()?.join("target/site"),
    };
    ensure!(
        dir.join("index.html").is_file(),
        "{} holds no site; build one with `cargo xtask index`",
        dir.display()
    );
    let server =
        mlld_e2e::http::HttpServer::start_on(args.port, mlld_e2e::http::static_files(dir.clone()))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on 127.0.0.1:{}: {e} (pick another with --port)",
                    args.port
                )
            })?;
    println!(
        "serving {} at {}/ (Ctrl-C to stop)",
        dir.display(),
        server.url()
    );
    loop {
        std::thread::park();
    }
}
