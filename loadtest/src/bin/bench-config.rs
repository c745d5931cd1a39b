//! Prints the 2,000-route banyan config of scenario (g): the same synthetic config as
//! banyan's reload and routing benchmarks, the benchmarked route last.

use clap::Parser;

#[path = "../../../benches/many_routes.rs"]
mod many_routes;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 2000)]
    routes: usize,
    /// host:port of the upstream every route goes to.
    #[arg(long)]
    upstream: String,
    #[arg(long)]
    listen: String,
    #[arg(long)]
    admin: String,
}

fn main() {
    let args = Args::parse();
    let endpoint = format!("http://{}", args.upstream);
    print!(
        "{}",
        many_routes::many_routes(
            args.routes,
            &[("legacy", &endpoint), ("items", &endpoint)],
            &args.listen,
            &args.admin,
        )
    );
}
