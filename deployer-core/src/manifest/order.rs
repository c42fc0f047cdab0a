//! Deploy order: `depends_on` makes a service's rollover wait for the services it depends on.
//! Unknown names and cycles are manifest errors; [`Manifest::stages`] layers a selection.

use std::collections::{BTreeMap, BTreeSet};

use super::{Manifest, Service, did_you_mean};

/// A problem with a service's `depends_on`: the service, the message, a help line.
pub(super) type Problem = (String, String, Option<String>);

/// Unknown dependencies (with a suggestion) and cycles (printed as `a → b → a`).
pub(super) fn check(services: &BTreeMap<String, Service>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for service in services.values() {
        for dependency in &service.depends_on {
            if !services.contains_key(dependency) {
                let help = did_you_mean(dependency, services.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"));
                problems.push((
                    service.name.clone(),
                    format!(
                        "service `{}` depends on `{dependency}`, which is not a service",
                        service.name
                    ),
                    help,
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(services) {
        problems.push((
            cycle[0].clone(),
            format!("dependency cycle: {}", cycle.join(" → ")),
            Some("remove one `depends_on` entry of the cycle".into()),
        ));
    }
    problems
}

/// A cycle, as the names along it with the first repeated at the end.
fn find_cycle(services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        services: &BTreeMap<String, Service>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name.to_owned(), Mark::Visiting);
        path.push(name.to_owned());
        for dependency in services
            .get(name)
            .map(|s| s.depends_on.as_slice())
            .unwrap_or_default()
        {
            if services.contains_key(dependency)
                && let Some(cycle) = visit(dependency, services, marks, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(name.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    services
        .keys()
        .find_map(|name| visit(name, services, &mut marks, &mut Vec::new()))
}

impl Manifest {
    /// The services named in `selected`, in stages: a service comes after every service it
    /// depends on (directly or through services outside the selection). Within a stage, names
    /// are sorted. The manifest has been checked for cycles.
    pub fn stages(&self, selected: &[String]) -> Vec<Vec<String>> {
        let chosen: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
        // depth = length of the longest dependency chain among all services
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        fn depth_of<'m>(
            name: &'m str,
            manifest: &'m Manifest,
            depth: &mut BTreeMap<&'m str, usize>,
            guard: usize,
        ) -> usize {
            if let Some(d) = depth.get(name) {
                return *d;
            }
            let d = manifest
                .services
                .get(name)
                .map(|s| {
                    s.depends_on
                        .iter()
                        .map(|dep| {
                            1 + if guard > 0 {
                                depth_of(dep, manifest, depth, guard - 1)
                            } else {
                                0
                            }
                        })
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            depth.insert(name, d);
            d
        }
        let mut stages: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for name in &chosen {
            let d = depth_of(name, self, &mut depth, self.services.len());
            stages.entry(d).or_default().push((*name).to_owned());
        }
        stages.into_values().collect()
    }

    /// Every service `name` depends on, directly or not.
    pub fn dependencies_of(&self, name: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut todo: Vec<&str> = vec![name];
        while let Some(next) = todo.pop() {
            for dependency in self
                .services
                .get(next)
                .map(|s| s.depends_on.as_slice())
                .unwrap_or_default()
            {
                if found.insert(dependency.clone()) {
                    todo.push(dependency);
                }
            }
        }
        found
    }
}
