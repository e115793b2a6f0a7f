//! One module per subcommand; each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod check_backends;
pub mod compare;
pub mod demo;
pub mod diff;
pub mod explain;
pub mod noise;
pub mod replay;
pub mod run;
pub mod sigmas;
pub mod verify;
