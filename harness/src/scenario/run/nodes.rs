//! The fleet a run plays against, in one of two tiers ([`FleetTier`]): the in-process
//! simulated fleet on the host's loopback (`simulators::Fleet`), or the container fleet
//! (`crate::container::nodes::ContainerFleet`: a container per node on its modelled address,
//! the traffic server in the same namespace). The runner talks to either through [`Running`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use simulators::{Fleet, FleetConfig, Identity, NodeEvent};

use crate::container::nodes::ContainerFleet;
use crate::runtime::runtime;

/// Where the fleet's nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetTier {
    /// In this process, each node on its own `127.x.y.z` (`--fleet in-process`, the default).
    #[default]
    InProcess,
    /// A container per node, on its modelled address (`--fleet containers`); only a traffic
    /// server in a container reaches them (`--verifier ats:8.1`, `ats:9.2`).
    Containers,
}

/// Why the running fleet refused.
#[derive(Debug, thiserror::Error)]
pub enum RunningError {
    /// The in-process fleet.
    #[error(transparent)]
    InProcess(#[from] simulators::FleetError),
    /// The container fleet (a node that crashed, an engine that failed): a harness fault.
    #[error(transparent)]
    Containers(#[from] crate::container::ContainerError),
}

/// A running fleet of either tier.
pub(super) enum Running {
    InProcess(Fleet),
    Containers(Arc<ContainerFleet>),
}

impl Running {
    /// Starts `config` in `tier`.
    pub(super) fn start(config: FleetConfig, tier: FleetTier) -> Result<Running, RunningError> {
        Ok(match tier {
            FleetTier::InProcess => Running::InProcess(runtime().block_on(Fleet::start(config))?),
            FleetTier::Containers => Running::Containers(Arc::new(ContainerFleet::start(&config)?)),
        })
    }

    /// The container fleet, for the verifiers to join.
    pub(super) fn containers(&self) -> Option<Arc<ContainerFleet>> {
        match self {
            Running::InProcess(_) => None,
            Running::Containers(fleet) => Some(fleet.clone()),
        }
    }

    /// Where a verifier reaches a node's port: its loopback socket in-process, its modelled
    /// address in the container fleet's namespace.
    pub(super) fn socket(&self, node: &str, port: u16, modelled: std::net::IpAddr) -> Option<SocketAddr> {
        match self {
            Running::InProcess(fleet) => fleet.socket(node, port),
            Running::Containers(_) => Some(SocketAddr::new(modelled, port)),
        }
    }

    /// Waits until the nodes are quiet (the container fleet's nodes wait when their events are
    /// taken).
    pub(super) fn settle(&self, timeout: Duration) -> bool {
        match self {
            Running::InProcess(fleet) => runtime().block_on(fleet.settle(timeout)),
            Running::Containers(_) => true,
        }
    }

    /// Every node's events not taken yet, nodes in fleet order.
    pub(super) fn take_events(&self) -> Result<Vec<NodeEvent>, RunningError> {
        match self {
            Running::InProcess(fleet) => Ok(fleet.take_events()),
            Running::Containers(fleet) => Ok(fleet.take_events()?),
        }
    }

    pub(super) fn set_identities(
        &self,
        node: &str,
        port: u16,
        rsa: Option<Identity>,
        ecdsa: Option<Identity>,
    ) -> Result<(), RunningError> {
        match self {
            Running::InProcess(fleet) => Ok(fleet.set_identities(node, port, rsa, ecdsa)?),
            Running::Containers(fleet) => Ok(fleet.set_identities(node, port, rsa, ecdsa)?),
        }
    }

    pub(super) fn set_system_server(&self, node: &str, name: &str) -> Result<(), RunningError> {
        match self {
            Running::InProcess(fleet) => Ok(fleet.set_system_server(node, name)?),
            Running::Containers(fleet) => Ok(fleet.set_system_server(node, name)?),
        }
    }

    /// A node's services stop (container fleet only; in-process the verifiers are told).
    pub(super) fn node_down(&self, node: &str) -> Result<(), RunningError> {
        match self {
            Running::InProcess(_) => Ok(()),
            Running::Containers(fleet) => Ok(fleet.node_down(node)?),
        }
    }

    /// A stopped node's services start again.
    pub(super) fn node_up(&self, node: &str) -> Result<(), RunningError> {
        match self {
            Running::InProcess(_) => Ok(()),
            Running::Containers(fleet) => Ok(fleet.node_up(node)?),
        }
    }

    /// Packets to a node are dropped.
    pub(super) fn partition(&self, node: &str) -> Result<(), RunningError> {
        match self {
            Running::InProcess(_) => Ok(()),
            Running::Containers(fleet) => Ok(fleet.partition(node)?),
        }
    }

    /// Packets reach a partitioned node again.
    pub(super) fn heal(&self, node: &str) -> Result<(), RunningError> {
        match self {
            Running::InProcess(_) => Ok(()),
            Running::Containers(fleet) => Ok(fleet.heal(node)?),
        }
    }

    /// Starts (or stops) recording the nodes' bytes and TLS secrets, for captures. The
    /// container fleet's nodes send only their secrets: its traffic is captured as real packets
    /// in its namespace by the traffic server's verifier.
    pub(super) fn record(&self, on: bool) {
        match self {
            Running::InProcess(fleet) => fleet.record(on),
            Running::Containers(fleet) => fleet.keep_secrets(on),
        }
    }

    /// What the nodes recorded: the container fleet's, secrets only (taken with their events).
    pub(super) fn take_recordings(&self) -> Result<simulators::Recordings, RunningError> {
        Ok(match self {
            Running::InProcess(fleet) => fleet.take_recordings(),
            Running::Containers(fleet) => {
                simulators::Recordings { connections: Vec::new(), key_log: fleet.take_secrets()? }
            }
        })
    }

    /// Stops every node and waits until they are gone.
    pub(super) fn stop(self) {
        match self {
            Running::InProcess(fleet) => runtime().block_on(fleet.stop()),
            // The containers go when the last handle (the runner's or a verifier's) drops.
            Running::Containers(fleet) => drop(fleet),
        }
    }
}
