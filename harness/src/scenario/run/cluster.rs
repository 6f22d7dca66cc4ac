//! The steps of a live cluster: a node's services stop and start again (`node-down`,
//! `node-up`), the network drops and lets through packets to it (`partition`, `heal`). In the
//! container fleet they happen for real (the node's program stops; an nftables set drops the
//! packets); in-process the runner keeps each node's state and tells the verifiers with every
//! request ([`OriginState`]).

use super::super::report::StepReport;
use super::super::spec::NodeStep;
use super::{Runner, ScenarioError};
use crate::verifier::OriginState;

/// Which of the four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClusterChange {
    Down,
    Up,
    Partition,
    Heal,
}

impl Runner<'_> {
    /// What a node's address does with a connection now.
    pub(super) fn origin_state(&self, node: &str) -> OriginState {
        self.node_states.get(node).copied().unwrap_or_default()
    }

    pub(super) fn cluster_change(
        &mut self,
        step: &NodeStep,
        change: ClusterChange,
        report: &mut StepReport,
    ) -> Result<(), ScenarioError> {
        let node = self.fleet.node(&step.node).map_err(|e| self.fleet_error(e))?.name.clone();
        let ip = self.fleet.node(&node).map_err(|e| self.fleet_error(e))?.spec.ip;
        let now = self.origin_state(&node);
        let (next, title, outcome) = match change {
            ClusterChange::Down => (
                OriginState::Refusing,
                format!("{node} ({ip}) goes down"),
                "its services stop: connections to it are refused",
            ),
            ClusterChange::Up => (
                OriginState::Listening,
                format!("{node} ({ip}) comes back up"),
                "its services accept connections again",
            ),
            ClusterChange::Partition => (
                OriginState::Silent,
                format!("{node} ({ip}) is cut off from Expressway-C"),
                "every packet to it is dropped: connections to it are never answered",
            ),
            ClusterChange::Heal => {
                (OriginState::Listening, format!("{node} ({ip}) is reachable again"), "packets reach it again")
            }
        };
        let allowed = match change {
            ClusterChange::Down | ClusterChange::Partition => now == OriginState::Listening,
            ClusterChange::Up => now == OriginState::Refusing,
            ClusterChange::Heal => now == OriginState::Silent,
        };
        if !allowed {
            return Err(self.invalid(format!("step {:?} on node '{node}', which is {now:?}", change)));
        }
        match change {
            ClusterChange::Down => self.running.node_down(&node),
            ClusterChange::Up => self.running.node_up(&node),
            ClusterChange::Partition => self.running.partition(&node),
            ClusterChange::Heal => self.running.heal(&node),
        }
        .map_err(|e| self.running_error(e))?;
        self.node_states.insert(node, next);
        report.title = title;
        report.outcome = outcome.to_string();
        Ok(())
    }
}
