//! The order in which named Windows services are stopped or started, from
//! what the Service Control Manager says each depends on: a service is
//! stopped only after every named service that depends on it (directly or
//! through other services), and started only after every named service it
//! depends on. Plain code over a snapshot of the dependencies, so the order
//! never depends on how the configuration lists the names.

use super::Direction;
use std::collections::{BTreeMap, BTreeSet};

/// What each service depends on (`DependOnService`), as read from the
/// Service Control Manager. Names compare without case, as Windows does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DependencyGraph {
    /// Lower-case name → the names it depends on, as the SCM spells them.
    depends_on: BTreeMap<String, Vec<String>>,
}

impl DependencyGraph {
    /// Records the dependencies of `service` (replacing any recorded before).
    pub fn insert(&mut self, service: &str, depends_on: Vec<String>) {
        self.depends_on.insert(key(service), depends_on);
    }

    /// Whether the dependencies of `service` were recorded.
    pub fn contains(&self, service: &str) -> bool {
        self.depends_on.contains_key(&key(service))
    }

    /// The recorded dependencies of `service`; none for a service that was
    /// not recorded (one outside the named ones that could not be read: it
    /// leads nowhere the order has to care about).
    fn of(&self, service: &str) -> &[String] {
        self.depends_on
            .get(&key(service))
            .map_or(&[], Vec::as_slice)
    }
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

/// Why no order exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// A named service whose dependencies were never read: ordering it
    /// would be a guess.
    #[error("the dependencies of the service `{0}` are not known, so it cannot be ordered")]
    Unknown(String),
    /// Services that depend on each other in a circle, which Windows
    /// cannot start either.
    #[error("the services depend on each other in a circle: {}; fix their dependencies (`sc qc NAME`)", .0.join(" → "))]
    Cycle(Vec<String>),
}

/// The named services in the order to stop or start them. Names are those
/// of `named` (duplicates, without regard to case, once); services that are
/// not named are never in the answer but carry dependencies through (A
/// depends on X depends on B: B starts before A). Among services that do
/// not depend on one another the order is alphabetical, so that it is the
/// same whichever way the list was written.
pub fn order(
    named: &[String],
    graph: &DependencyGraph,
    direction: Direction,
) -> Result<Vec<String>, OrderError> {
    let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
    for name in named {
        if !graph.contains(name) {
            return Err(OrderError::Unknown(name.clone()));
        }
        spelled.entry(key(name)).or_insert(name);
    }
    check_for_cycles(&spelled, graph)?;
    // For each named service, the named services it needs started first.
    let needs: BTreeMap<&str, BTreeSet<&str>> = spelled
        .keys()
        .map(|service| {
            let reached = reachable(service, graph);
            let named_ones = spelled
                .keys()
                .filter(|other| *other != service && reached.contains(*other))
                .map(String::as_str)
                .collect();
            (service.as_str(), named_ones)
        })
        .collect();
    let mut placed: Vec<&str> = Vec::with_capacity(needs.len());
    while placed.len() < needs.len() {
        let ready = needs.iter().find(|(service, before)| {
            !placed.contains(service)
                && match direction {
                    // Everything it depends on is running already.
                    Direction::Start => before.iter().all(|b| placed.contains(b)),
                    // Everything that depends on it is stopped already.
                    Direction::Stop => needs
                        .iter()
                        .filter(|(_, theirs)| theirs.contains(*service))
                        .all(|(dependent, _)| placed.contains(dependent)),
                }
        });
        match ready {
            Some((service, _)) => placed.push(service),
            // `check_for_cycles` leaves no way to get stuck; kept total.
            None => {
                return Err(OrderError::Cycle(
                    needs
                        .keys()
                        .filter(|s| !placed.contains(s))
                        .map(|s| spelled[*s].to_owned())
                        .collect(),
                ))
            }
        }
    }
    Ok(placed.into_iter().map(|s| spelled[s].to_owned()).collect())
}

/// Every service `from` depends on, directly or through others (lower case).
fn reachable(from: &str, graph: &DependencyGraph) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = graph.of(from).iter().map(|d| key(d)).collect();
    while let Some(next) = stack.pop() {
        if seen.insert(next.clone()) {
            stack.extend(graph.of(&next).iter().map(|d| key(d)));
        }
    }
    seen
}

/// A circle among the services reachable from the named ones, as the path
/// that closes it (`A → B → A`).
fn check_for_cycles(
    named: &BTreeMap<String, &str>,
    graph: &DependencyGraph,
) -> Result<(), OrderError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    for start in named.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Depth first without recursion: (service, index of its next dependency).
        let mut path: Vec<(String, usize)> = vec![(start.clone(), 0)];
        marks.insert(start.clone(), Mark::OnPath);
        while let Some((service, next)) = path.last_mut() {
            let dependencies = graph.of(service);
            let Some(dependency) = dependencies.get(*next) else {
                marks.insert(service.clone(), Mark::Done);
                path.pop();
                continue;
            };
            *next += 1;
            let dependency = key(dependency);
            match marks.get(&dependency) {
                Some(Mark::Done) => {}
                Some(Mark::OnPath) => {
                    let from = path.iter().position(|(s, _)| *s == dependency).unwrap_or(0);
                    let mut circle: Vec<String> = path[from..]
                        .iter()
                        .map(|(s, _)| spelling(s, named, graph))
                        .collect();
                    circle.push(spelling(&dependency, named, graph));
                    return Err(OrderError::Cycle(circle));
                }
                None => {
                    marks.insert(dependency.clone(), Mark::OnPath);
                    path.push((dependency, 0));
                }
            }
        }
    }
    Ok(())
}

/// A name as the configuration or the SCM spells it, for messages.
fn spelling(service: &str, named: &BTreeMap<String, &str>, graph: &DependencyGraph) -> String {
    if let Some(name) = named.get(service) {
        return (*name).to_owned();
    }
    graph
        .depends_on
        .values()
        .flatten()
        .find(|d| key(d) == service)
        .cloned()
        .unwrap_or_else(|| service.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn graph(edges: &[(&str, &[&str])]) -> DependencyGraph {
        let mut graph = DependencyGraph::default();
        for (service, depends_on) in edges {
            graph.insert(service, names(depends_on));
        }
        graph
    }

    /// Password Secure as field scripts describe it: the backup service
    /// depends on the server service.
    fn password_secure() -> DependencyGraph {
        graph(&[("PsrServer", &[]), ("PsrBackupService", &["PsrServer"])])
    }

    #[test]
    fn the_backup_service_stops_first_and_starts_last_however_the_list_is_written() {
        for list in [
            ["PsrBackupService", "PsrServer"],
            ["PsrServer", "PsrBackupService"],
        ] {
            let named = names(&list);
            assert_eq!(
                order(&named, &password_secure(), Direction::Stop).unwrap(),
                ["PsrBackupService", "PsrServer"]
            );
            assert_eq!(
                order(&named, &password_secure(), Direction::Start).unwrap(),
                ["PsrServer", "PsrBackupService"]
            );
        }
    }

    #[test]
    fn names_are_matched_without_case_and_answered_as_configured() {
        let graph = graph(&[("psrserver", &[]), ("PSRBACKUPSERVICE", &["PSRSERVER"])]);
        let named = names(&["PsrServer", "PsrBackupService", "psrserver"]);
        assert_eq!(
            order(&named, &graph, Direction::Stop).unwrap(),
            ["PsrBackupService", "PsrServer"]
        );
    }

    #[test]
    fn a_dependency_through_a_service_not_named_still_orders_them() {
        // A depends on X, which depends on B; only A and B are named.
        let graph = graph(&[("A", &["X"]), ("X", &["B"]), ("B", &[])]);
        let named = names(&["A", "B"]);
        assert_eq!(order(&named, &graph, Direction::Start).unwrap(), ["B", "A"]);
        assert_eq!(order(&named, &graph, Direction::Stop).unwrap(), ["A", "B"]);
    }

    #[test]
    fn a_dependency_that_could_not_be_read_leads_nowhere() {
        // "Tcpip" was not recorded (not named, not readable): a leaf.
        let graph = graph(&[("PsrServer", &["Tcpip"])]);
        assert_eq!(
            order(&names(&["PsrServer"]), &graph, Direction::Start).unwrap(),
            ["PsrServer"]
        );
    }

    #[test]
    fn unrelated_services_go_alphabetically() {
        let graph = graph(&[("b", &[]), ("c", &[]), ("a", &[])]);
        let named = names(&["c", "a", "b"]);
        assert_eq!(
            order(&named, &graph, Direction::Stop).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            order(&named, &graph, Direction::Start).unwrap(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn a_named_service_whose_dependencies_are_unknown_is_refused() {
        let error = order(
            &names(&["PsrServer", "PsrBackupService"]),
            &graph(&[("PsrServer", &[])]),
            Direction::Stop,
        )
        .unwrap_err();
        assert_eq!(error, OrderError::Unknown("PsrBackupService".into()));
        assert!(error
            .to_string()
            .contains("`PsrBackupService` are not known"));
    }

    #[test]
    fn a_circle_is_refused_naming_it() {
        let circle = graph(&[("A", &["B"]), ("B", &["X"]), ("X", &["a"])]);
        let error = order(&names(&["A", "B"]), &circle, Direction::Start).unwrap_err();
        assert_eq!(
            error,
            OrderError::Cycle(names(&["A", "B", "X", "A"])),
            "{error}"
        );
        assert!(error.to_string().contains("A → B → X → A"), "{error}");
        // A circle that only passes through services not named counts too.
        let through = graph(&[("A", &["X"]), ("X", &["Y"]), ("Y", &["X"])]);
        assert!(matches!(
            order(&names(&["A"]), &through, Direction::Stop),
            Err(OrderError::Cycle(circle)) if circle == ["X", "Y", "X"]
        ));
    }

    /// A random acyclic graph over `n` services (each may depend only on
    /// services with a smaller number), some of them named, in any order.
    fn acyclic() -> impl Strategy<Value = (DependencyGraph, Vec<String>)> {
        (2usize..9)
            .prop_flat_map(|n| {
                (
                    Just(n),
                    prop::collection::vec(prop::collection::vec(any::<bool>(), n), n),
                    prop::collection::vec(any::<bool>(), n),
                    any::<u64>(),
                )
            })
            .prop_map(|(n, edges, named, seed)| {
                let name = |i: usize| format!("Svc{i}");
                let mut graph = DependencyGraph::default();
                for (i, row) in edges.iter().enumerate() {
                    let deps = (0..i).filter(|j| row[*j]).map(name).collect();
                    graph.insert(&name(i), deps);
                }
                let mut list: Vec<String> = (0..n).filter(|i| named[*i]).map(name).collect();
                // Any order of writing them.
                let mut state = seed;
                for i in (1..list.len()).rev() {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    list.swap(i, (state >> 33) as usize % (i + 1));
                }
                (graph, list)
            })
    }

    proptest! {
        #[test]
        fn every_dependency_is_respected_and_the_list_order_does_not_matter((graph, list) in acyclic()) {
            let start = order(&list, &graph, Direction::Start).unwrap();
            let stop = order(&list, &graph, Direction::Stop).unwrap();
            let mut sorted = list.clone();
            sorted.sort();
            let mut reversed = list.clone();
            reversed.reverse();
            prop_assert_eq!(&order(&reversed, &graph, Direction::Start).unwrap(), &start);
            prop_assert_eq!(&order(&reversed, &graph, Direction::Stop).unwrap(), &stop);
            for answer in [&start, &stop] {
                let mut names = answer.clone();
                names.sort();
                prop_assert_eq!(&names, &sorted);
            }
            for (i, a) in start.iter().enumerate() {
                for b in &start[i + 1..] {
                    // Started earlier: never depends on one started later.
                    prop_assert!(!reachable(a, &graph).contains(&key(b)), "{a} before {b}");
                }
            }
            for (i, a) in stop.iter().enumerate() {
                for b in &stop[i + 1..] {
                    // Stopped earlier: nothing stopped later depends on it.
                    prop_assert!(!reachable(b, &graph).contains(&key(a)), "{a} before {b}");
                }
            }
        }
    }
}
