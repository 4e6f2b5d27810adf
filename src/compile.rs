//! The whole pipeline, from the texts of a cluster folder to the lock and
//! the files of the output folder. Pure: the CLI reads and writes; tests,
//! `check` and the benchmark call this directly.

use std::time::{Duration, Instant};

use crate::diag::{self, Diagnostic};
use crate::layout::{self, Files, Source};
use crate::load::{self, Texts};
use crate::lock::Lock;
use crate::place::{self, Event};
use crate::{config, graph, manifest};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Unknown config keys are errors, not warnings.
    pub strict_config: bool,
    /// The output folder's path inside its Git repository, `/`-separated
    /// (see `layout::Source`).
    pub repo_path: String,
    /// Evidence from the cluster (`--observed`), read; it moves day-2 steps
    /// on (see `lock`).
    pub observed: Vec<crate::evidence::File>,
}

/// The repository URL of the example Flux and Argo CD objects when
/// `[gitops] repository` is not set.
pub const EXAMPLE_REPOSITORY: &str = "https://git.example.com/REPLACE-ME/tidb-deploy.git";

/// What a compile produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub lock: Lock,
    pub events: Vec<Event>,
    pub files: Files,
    /// How many Kubernetes objects `files` holds under `manifests/`.
    pub objects: usize,
    /// Warnings (errors stop the compile).
    pub warnings: Vec<Diagnostic>,
    /// Day-2 steps waiting for evidence, with the command that captures it.
    pub waiting: Vec<String>,
    pub timings: Timings,
}

/// Time spent in each stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub load: Duration,
    pub place: Duration,
    pub objects: Duration,
    pub render: Duration,
}

/// The most TiKV a cluster may have without `topology.isolation_level`.
pub const MAX_TIKV_WITHOUT_ISOLATION: u32 = 10;

/// Rules of the rollout that `place` alone does not need (DESIGN §5
/// "Rollout"). Without an isolation level every TiKV restarts in a wave of
/// its own, one after another: fine for a few stores, too slow and too easy
/// to get wrong for more.
fn rollout_rules(model: &crate::model::Model) -> Vec<Diagnostic> {
    let c = &model.cluster;
    if c.topology.isolation_level.is_some() || c.tikv.replicas <= MAX_TIKV_WITHOUT_ISOLATION {
        return Vec::new();
    }
    vec![
        Diagnostic::error(format!(
            "{} TiKV without an isolation level would restart one store at a time",
            c.tikv.replicas
        ))
        .at(crate::diag::FileKind::Cluster, c.tikv.replicas_span.clone())
        .label(format!("more than {MAX_TIKV_WITHOUT_ISOLATION}"))
        .note("with [topology] isolation_level, PD keeps the replicas of each Region in distinct domains, and all stores of one domain restart together")
        .hint("set isolation_level in [topology]: \"zone\" or \"rack\" when the nodes carry those labels, or at least list \"host\" in location_labels and set isolation_level = \"host\""),
    ]
}

/// The placement solver's events for the given texts: what changes from
/// their lock to a placement of their inputs. Empty when they do not load
/// or place (the caller compiled the inputs already and reported that).
pub fn events_since(texts: Texts<'_>) -> Vec<Event> {
    let (Some(loaded), _) = load::load(texts) else {
        return Vec::new();
    };
    place::place(&loaded.model, &loaded.lock, &place::Options::default())
        .map(|outcome| outcome.events)
        .unwrap_or_default()
}

/// What each day-2 step waits for, and the command that captures it.
pub fn waiting(lock: &crate::lock::Lock, names: &crate::manifest::Names) -> Vec<String> {
    use crate::lock::State;
    let mut out = Vec::new();
    for e in &lock.entries {
        let Some(command) = crate::evidence::awaited(lock, names, e.id.component, e.state) else {
            continue;
        };
        let what = match (e.id.component, e.state) {
            (crate::model::Component::Pd, State::Leaving | State::Failed) => {
                "PD's member list no longer naming it (its delete Job removes it)"
            }
            (_, State::Leaving | State::Removing) => {
                "PD listing its store as Tombstone (its Regions move off first; this can take hours)"
            }
            (_, State::Failed) => {
                "every running store Up, the replacement included; then its store is deleted through PD"
            }
            _ => "its reclaim Job to succeed (a node that is down keeps it pending)",
        };
        out.push(format!(
            "{} ({}, {}:{}) waits for {what}: capture `{command}` and compile with `--observed {}`",
            e.id,
            e.state.as_str(),
            e.node,
            e.path,
            command.rsplit(' ').next().unwrap_or_default()
        ));
    }
    out
}

pub fn compile(texts: Texts<'_>, options: &Options) -> Result<Compiled, Vec<Diagnostic>> {
    let mut timings = Timings::default();
    let start = Instant::now();
    let (loaded, mut diagnostics) = load::load(texts);
    let Some(loaded) = loaded else {
        return Err(diagnostics);
    };
    diagnostics.extend(config::check(
        &loaded.model,
        texts.cluster,
        options.strict_config,
    ));
    diagnostics.extend(rollout_rules(&loaded.model));
    if diag::has_errors(&diagnostics) {
        diag::sort(&mut diagnostics);
        return Err(diagnostics);
    }
    timings.load = start.elapsed();

    let start = Instant::now();
    let names = crate::manifest::Names::new(&loaded.model);
    let observed = match crate::evidence::resolve(&options.observed, &loaded.lock, &names) {
        Ok(observed) => observed,
        Err(errors) => {
            diagnostics.extend(errors.into_iter().map(|e| {
                Diagnostic::error(format!("the evidence contradicts placement.lock: {e}"))
                    .hint("check that the evidence comes from this cluster and is current; nothing was written")
            }));
            diag::sort(&mut diagnostics);
            return Err(diagnostics);
        }
    };
    let outcome = match place::place_observed(
        &loaded.model,
        &loaded.lock,
        &place::Options::default(),
        &observed,
    ) {
        Ok(outcome) => outcome,
        Err(errors) => {
            diagnostics.extend(errors);
            diag::sort(&mut diagnostics);
            return Err(diagnostics);
        }
    };
    diagnostics.extend(outcome.warnings.iter().cloned());
    timings.place = start.elapsed();

    let start = Instant::now();
    let model = &loaded.model;
    let configs = config::render(model);
    let built = manifest::objects(model, &outcome.lock, &configs).and_then(|objects| {
        graph::assign(model, &outcome.lock, &objects).map(|ordering| (objects, ordering))
    });
    let (objects, ordering) = match built {
        Ok(built) => built,
        Err(errors) => {
            diagnostics.extend(errors);
            diag::sort(&mut diagnostics);
            return Err(diagnostics);
        }
    };
    timings.objects = start.elapsed();

    let start = Instant::now();
    let count = objects.len();
    let source = Source {
        repository: model
            .cluster
            .gitops
            .repository
            .clone()
            .unwrap_or_else(|| EXAMPLE_REPOSITORY.into()),
        branch: model.cluster.gitops.branch.clone(),
        path: options.repo_path.clone(),
    };
    let files = match layout::files(model, objects, &ordering, &source) {
        Ok(files) => files,
        Err(errors) => {
            diagnostics.extend(errors);
            diag::sort(&mut diagnostics);
            return Err(diagnostics);
        }
    };
    timings.render = start.elapsed();
    diag::sort(&mut diagnostics);
    let waiting = waiting(&outcome.lock, &names);
    Ok(Compiled {
        waiting,
        lock: outcome.lock,
        events: outcome.events,
        files,
        objects: count,
        warnings: diagnostics,
        timings,
    })
}
