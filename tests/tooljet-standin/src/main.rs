//! Runs the ToolJet stand-in on a port, for benchmarks and trying the operator by hand.

use clap::Parser;

/// A stand-in ToolJet server (test double; never part of the operator).
#[derive(Parser)]
#[command(name = "tooljet-standin", version)]
struct Args {
    /// Port on 127.0.0.1 (0 lets the OS choose).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Enables the `tj-admin-api-key` header with this key.
    #[arg(long)]
    admin_api_key: Option<String>,
    /// The e-mail of the one user that can log in.
    #[arg(long, default_value = "admin@example.com")]
    email: String,
    /// That user's password.
    #[arg(long, default_value = "password")]
    password: String,
    /// Enables the EE `/api/ext` routes with this token.
    #[arg(long)]
    external_token: Option<String>,
    /// Which ToolJet to answer like: `3.x` (the contract) or `2.27` (what ToolJet CE 2.27.1
    /// was seen to do: no release route, no admin API key, no version check on import, ...).
    #[arg(long, default_value = "3.x")]
    flavour: tooljet_standin::Flavour,
    /// The ToolJet version to claim (default: 3.5.11 for 3.x, 2.27.1 for 2.27); on 3.x,
    /// bundles newer than this are refused.
    #[arg(long)]
    server_version: Option<String>,
    /// The workspace id (a fresh UUID when omitted).
    #[arg(long)]
    workspace_id: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = tooljet_standin::StandIn::builder()
        .port(args.port)
        .credentials(args.email, args.password)
        .flavour(args.flavour);
    if let Some(version) = args.server_version {
        builder = builder.server_version(version);
    }
    if let Some(id) = args.workspace_id {
        builder = builder.workspace_id(id);
    }
    if let Some(key) = args.admin_api_key {
        builder = builder.admin_api_key(key);
    }
    if let Some(token) = args.external_token {
        builder = builder.external_token(token);
    }
    let standin = builder.start().await?;
    // Secrets are the caller's own command-line arguments; echo only what to use.
    println!("tooljet-standin listening on {}", standin.base_url());
    println!("workspace id: {}", standin.workspace_id());
    println!(
        "server version: {} (flavour {})",
        standin.server_version(),
        standin.flavour()
    );
    tokio::signal::ctrl_c().await?;
    standin.shutdown();
    Ok(())
}
