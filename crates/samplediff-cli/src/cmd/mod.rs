//! One module per subcommand; each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod compare;
pub mod demo;
pub mod noise;
pub mod replay;
pub mod sigmas;
