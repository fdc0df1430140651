use clap::Parser;
use swarm_agent::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    swarm_agent::init_logging(cli.global.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    std::process::ExitCode::from(runtime.block_on(swarm_agent::run(cli)))
}
