//! Command-line arguments.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Ship application code to live AWS compute: build what changed, roll it out, wait, record.
#[derive(Debug, Parser)]
#[command(name = "deployer", propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The manifest [default: deployer.toml in the current directory or the nearest parent]
    #[arg(
        long,
        short = 'f',
        global = true,
        env = "DEPLOYER_MANIFEST",
        value_name = "PATH"
    )]
    pub(crate) manifest: Option<PathBuf>,
    /// Print the result as one JSON document on stdout (errors too)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(long, short = 'v', global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
    /// How long deploy, wait and rollback wait for another deploy of the same service to finish
    /// (e.g. "10m"; "0s" fails at once naming the holder) [default: the service's timeout]
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) lock_wait: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check the manifest: keys, kinds, paths, globs, platforms
    Validate(Select),
    /// Print each service's content tag (the hash of its inputs)
    Hash(Select),
    /// Show what a deploy would do: new tag, recorded tag, live artifact, registry, action
    Plan(PlanArgs),
    /// Build and push the images the registry lacks (and build the zips); deploy nothing
    Build(BuildArgs),
    /// Build what is missing, roll over what is behind, wait, record the live tag in SSM
    Deploy(DeployArgs),
    /// Wait for rollouts started with `deploy --no-wait`, then record them
    Wait(Select),
    /// Live artifact, recorded tag, whether they agree, and the last outcome
    Status(Select),
    /// The live services' recent log lines, interleaved by time; `--follow` prints new ones
    Logs(LogsArgs),
    /// Roll a service back to its previous successful deploy (not "revision minus one")
    Rollback(RollbackArgs),
    /// Generate CI configuration from the manifest
    Ci(CiArgs),
    /// Print the least-privilege IAM policy of a CI role that deploys the selected services
    IamPolicy(Select),
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub(crate) select: Select,
    /// From how long ago (e.g. "10m", "2h")
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) since: std::time::Duration,
    /// Keep printing new lines as they are written, until interrupted (with --json: one JSON
    /// object per line)
    #[arg(long)]
    pub(crate) follow: bool,
    /// Print at most this many lines (the newest), without --follow
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub(crate) limit: usize,
}

#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    #[command(subcommand)]
    pub(crate) command: CiCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CiCommand {
    /// A GitHub Actions workflow: one build and one deploy job per service, run when its inputs change
    Github {
        /// Write it (default path .github/workflows/deployer.yml) instead of printing it
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Fail (exit 1) when the file on disk differs from what would be generated
        #[arg(long)]
        check: bool,
        /// The workflow file, relative to the manifest's directory
        #[arg(long)]
        path: Option<PathBuf>,
    },
}

/// The image builder to use instead of the automatic choice.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum BuilderArg {
    Docker,
    Podman,
    Buildah,
}

impl From<BuilderArg> for deployer_core::manifest::Builder {
    fn from(arg: BuilderArg) -> Self {
        match arg {
            BuilderArg::Docker => Self::Docker,
            BuilderArg::Podman => Self::Podman,
            BuilderArg::Buildah => Self::Buildah,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) select: Select,
    /// Only ask the registry: report what would be built
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Image builder [default: `builder` in [project], else docker, podman, buildah: the first usable]
    #[arg(long, value_enum)]
    pub(crate) builder: Option<BuilderArg>,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) select: Select,
    /// Exit code 0 when nothing is to do, 2 when changes are pending, 1 on error
    #[arg(long)]
    pub(crate) detailed_exitcode: bool,
    /// Print the services with pending changes as a GitHub Actions matrix (one JSON line)
    #[arg(long, conflicts_with = "json")]
    pub(crate) github_matrix: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    pub(crate) select: Select,
    /// Every service of the manifest
    #[arg(long, conflicts_with = "services")]
    pub(crate) all: bool,
    /// Only the services whose plan is not `unchanged` (among --service, or all)
    #[arg(long)]
    pub(crate) changed: bool,
    /// Show the plan and change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Start the rollouts and return; confirm them later with `deployer wait`
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Image builder [default: `builder` in [project], else docker, podman, buildah: the first usable]
    #[arg(long, value_enum)]
    pub(crate) builder: Option<BuilderArg>,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The service to roll back
    #[arg(long = "service", short = 's', value_name = "NAME", required = true)]
    pub(crate) services: Vec<String>,
}

/// Which services a command acts on.
#[derive(Debug, Args)]
pub(crate) struct Select {
    /// A service from the manifest (repeatable) [default: every service]
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub(crate) services: Vec<String>,
}
