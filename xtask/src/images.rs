//! `cargo xtask images`: builds the container images of the container tier (`mralab/ats:8.1`,
//! `mralab/ats:9.2`, `mralab/node:12`) from Debian's packages, each only when its recipe changed.
//! The node image holds the workspace's `mralab-node`, which this command builds first (cargo,
//! the dev profile, beside this binary).

use std::process::ExitCode;
use std::time::Instant;

use harness::container::image::{ImageState, RECIPES, Recipe, debian_mirror};

use crate::out::{noteln, outln};

/// `cargo xtask images [--rebuild] [--check] [--node-program PATH] [NAME...]`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Build even when an image of the same recipe is there.
    #[arg(long)]
    rebuild: bool,
    /// Only say which images are missing or stale; exit 1 if any is.
    #[arg(long, conflicts_with = "rebuild")]
    check: bool,
    /// Stage this already built `mralab-node` for the node image instead of building it with
    /// cargo (CI builds the images beside clippy, which holds cargo's lock).
    #[arg(long, value_name = "PATH")]
    node_program: Option<std::path::PathBuf>,
    /// The images to build (`mralab/ats:8.1`, or just `8.1`); all by default.
    names: Vec<String>,
}

fn chosen(names: &[String]) -> anyhow::Result<Vec<Recipe>> {
    if names.is_empty() {
        return Ok(RECIPES.to_vec());
    }
    names
        .iter()
        .map(|name| {
            RECIPES.iter().copied().find(|r| r.image() == *name || r.tag == name).ok_or_else(|| {
                let known: Vec<String> = RECIPES.iter().map(Recipe::image).collect();
                anyhow::anyhow!("no image '{name}': mralab builds {}", known.join(", "))
            })
        })
        .collect()
}

/// Builds a workspace program an image holds (`mralab-node`) and stages the copy the image is
/// made from (`harness::container::image::stage_program`), unless `MRALAB_NODE_PROGRAM` names
/// one already built.
pub fn build_program(program: &str) -> anyhow::Result<()> {
    if std::env::var_os("MRALAB_NODE_PROGRAM").is_some_and(|p| !p.is_empty()) {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--locked", "-p", "simulators", "--bin", program])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run cargo to build {program}: {e}"))?;
    anyhow::ensure!(status.success(), "cargo build -p simulators --bin {program} failed ({status})");
    // Beside this binary: cargo puts both in target/<profile>/.
    let built = std::env::current_exe()?.with_file_name(program);
    harness::container::image::stage_program(program, &built)
        .map_err(|e| anyhow::anyhow!("staging {}: {e}", built.display()))?;
    Ok(())
}

/// Runs `cargo xtask images`.
pub fn run(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let recipes = chosen(&args.names)?;
    for program in recipes.iter().filter_map(|r| r.program) {
        match &args.node_program {
            Some(built) => {
                harness::container::image::stage_program(program, built)
                    .map_err(|e| anyhow::anyhow!("staging {}: {e}", built.display()))?;
            }
            None => build_program(program)?,
        }
    }
    let mut to_build = Vec::new();
    for recipe in recipes {
        let state = recipe.state()?;
        let image = recipe.image();
        match (&state, args.rebuild) {
            (ImageState::Current { packages }, false) => {
                outln!("{image}: up to date (recipe {}; {packages})", recipe.hash())?;
            }
            (ImageState::Current { .. }, true) => to_build.push((recipe, "rebuild asked".to_string())),
            (ImageState::Missing, _) => to_build.push((recipe, "missing".to_string())),
            (ImageState::Stale { had }, _) => {
                let had = if had.is_empty() { "not built by mralab".to_string() } else { format!("recipe {had}") };
                to_build.push((recipe, format!("stale ({had}; now {})", recipe.hash())));
            }
        }
    }
    if args.check {
        for (recipe, why) in &to_build {
            outln!("{}: {why}", recipe.image())?;
        }
        return Ok(if to_build.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    if to_build.is_empty() {
        noteln!("nothing to build ({:.1} s)", started.elapsed().as_secs_f64());
        return Ok(ExitCode::SUCCESS);
    }
    let mirror = debian_mirror();
    for (recipe, why) in &to_build {
        noteln!("{}: building ({why})", recipe.image());
    }
    // The root filesystems are fetched side by side: debootstrap mostly waits on the mirror.
    let progress = |line: &str| noteln!("  {line}");
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = to_build
            .iter()
            .map(|(recipe, _)| {
                let mirror = mirror.as_str();
                let progress = &progress;
                scope.spawn(move || recipe.build(mirror, progress))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut failed = false;
    for ((recipe, _), result) in to_build.iter().zip(results) {
        match result {
            Ok(Ok(built)) => outln!(
                "{}: built in {:.1} s (debootstrap {:.1} s, image {:.1} s): {}",
                built.image,
                (built.debootstrap + built.build).as_secs_f64(),
                built.debootstrap.as_secs_f64(),
                built.build.as_secs_f64(),
                built.packages
            )?,
            Ok(Err(e)) => {
                failed = true;
                noteln!("error: {e}");
            }
            Err(_) => {
                failed = true;
                noteln!("error: {}: the build panicked", recipe.image());
            }
        }
    }
    noteln!("images: {:.1} s in all", started.elapsed().as_secs_f64());
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
