//! The dependency-heavy project of larder's bench harness (bench/run.sh): a small binary
//! that uses each of its heavy dependencies, so every one of them is compiled and linked.
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// The bench harness appends a line below this constant for its "one-line edit" scenario.
const GREETING: &str = "larder bench";

#[derive(Parser, Debug)]
#[command(name = "larder-bench-heavy", about = "larder bench: dependency-heavy project")]
struct Args {
    /// Name to put in the JSON document.
    #[arg(long, default_value = "world")]
    name: String,
    /// Worker threads of the tokio runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Request timeout of the HTTP client, in seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Document {
    greeting: String,
    name: String,
    threads: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let doc = Document {
        greeting: GREETING.to_string(),
        name: args.name.clone(),
        threads: args.threads,
    };
    let json = serde_json::to_string(&doc)?;
    let back: Document = serde_json::from_str(&json)?;
    assert_eq!(back, doc);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let user_agent = runtime.block_on(async move {
        // A TLS-capable client (rustls with ring); no request is sent.
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(args.timeout))
            .user_agent("larder-bench-heavy")
            .build()?;
        let request = client.get("https://example.invalid/").build()?;
        Ok::<_, reqwest::Error>(format!("{} {}", request.method(), request.url()))
    })?;
    println!("{json} {user_agent}");
    Ok(())
}
