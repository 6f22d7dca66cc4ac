//! Binding a fleet's listeners before anything is served: explicit addresses as given, every
//! other node on its own automatically allocated `127.x.y.z` ([`crate::loopback`]), moving to
//! fresh blocks when another process holds an address. Part of [`super::Fleet::start`].

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::{FleetError, Prepared};
use crate::loopback;

/// How many times automatic allocation moves to fresh blocks after finding an address taken.
const ALLOCATION_ATTEMPTS: u32 = 32;

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds every port of every node; returns the listeners in node order.
pub(super) fn bind_all(prepared: &[Prepared]) -> Result<Vec<Vec<std::net::TcpListener>>, FleetError> {
    bind_all_with(prepared, &mut loopback::reserve_blocks)
}

/// [`bind_all`] with the block reservation passed in, so a test can force a collision.
fn bind_all_with(
    prepared: &[Prepared],
    reserve_blocks: &mut dyn FnMut(u32) -> u32,
) -> Result<Vec<Vec<std::net::TcpListener>>, FleetError> {
    let mut bound: Vec<Option<Vec<std::net::TcpListener>>> = prepared.iter().map(|_| None).collect();
    // Explicit addresses first: a taken one is the caller's error, not something to route around.
    for (i, node) in prepared.iter().enumerate() {
        let Some(ip) = node.config.loopback else {
            continue;
        };
        let mut listeners = Vec::with_capacity(node.services.len());
        for svc in &node.services {
            let addr = SocketAddr::new(IpAddr::V4(ip), svc.port);
            listeners.push(bind(addr).map_err(|source| bind_error(&node.config.name, addr, source))?);
        }
        bound[i] = Some(listeners);
    }
    let auto: Vec<usize> = (0..prepared.len()).filter(|i| prepared[*i].config.loopback.is_none()).collect();
    if !auto.is_empty() {
        let blocks = loopback::blocks_for(auto.len());
        let mut last_taken = None;
        let mut placed = false;
        for _ in 0..ALLOCATION_ATTEMPTS {
            let first_block = reserve_blocks(blocks);
            match bind_auto(prepared, &auto, first_block) {
                Ok(listeners) => {
                    for (i, l) in auto.iter().zip(listeners) {
                        bound[*i] = Some(l);
                    }
                    placed = true;
                    break;
                }
                Err(AutoBindError::Taken { node, port }) => last_taken = Some((node, port)),
                Err(AutoBindError::Other(e)) => return Err(e),
            }
        }
        if !placed {
            let (node, port) = last_taken.unwrap_or_default();
            return Err(FleetError::NoFreeLoopback { node, port, attempts: ALLOCATION_ATTEMPTS });
        }
    }
    Ok(bound.into_iter().map(Option::unwrap_or_default).collect())
}

enum AutoBindError {
    Taken { node: String, port: u16 },
    Other(FleetError),
}

fn bind_auto(
    prepared: &[Prepared],
    auto: &[usize],
    first_block: u32,
) -> Result<Vec<Vec<std::net::TcpListener>>, AutoBindError> {
    let mut all = Vec::with_capacity(auto.len());
    for (k, i) in auto.iter().enumerate() {
        let node = &prepared[*i];
        let ip = loopback::address(first_block, u32::try_from(k).unwrap_or(u32::MAX));
        let mut listeners = Vec::with_capacity(node.services.len());
        for svc in &node.services {
            let addr = SocketAddr::new(IpAddr::V4(ip), svc.port);
            match bind(addr) {
                Ok(l) => listeners.push(l),
                // Dropping `all` and `listeners` releases this attempt's sockets.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(AutoBindError::Taken { node: node.config.name.clone(), port: svc.port });
                }
                Err(e) => {
                    return Err(AutoBindError::Other(bind_error(&node.config.name, addr, e)));
                }
            }
        }
        all.push(listeners);
    }
    Ok(all)
}

fn bind_error(node: &str, addr: SocketAddr, source: io::Error) -> FleetError {
    if source.kind() == io::ErrorKind::AddrInUse {
        FleetError::PortInUse { node: node.to_owned(), addr }
    } else {
        FleetError::Bind { node: node.to_owned(), addr, source }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::config::{CertChoice, ClientAuth, FleetConfig, Identity, NodeConfig, Role, ServiceConfig};
    use crate::fleet::prepare;

    fn node(name: &str) -> NodeConfig {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["cucm.steven.lab".to_owned()]).unwrap().self_signed(&key).unwrap();
        NodeConfig {
            name: name.to_owned(),
            role: Role::CucmPublisher,
            cluster: "c".to_owned(),
            fqdn: "cucm.steven.lab".to_owned(),
            modelled_ip: IpAddr::from([10, 48, 36, 215]),
            system_server: "cucm.steven.lab".to_owned(),
            loopback: None,
            tls13: false,
            services: vec![ServiceConfig {
                port: 8443,
                rsa: None,
                ecdsa: Some(Identity {
                    name: "tomcat-ECDSA".to_owned(),
                    chain: vec![cert.der().clone()],
                    key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                }),
                choice: CertChoice::ClientOrder,
                client_auth: ClientAuth::Off,
            }],
        }
    }

    #[test]
    fn automatic_allocation_moves_to_the_next_blocks_when_an_address_is_taken() {
        let config = FleetConfig { nodes: vec![node("a"), node("b")], ..FleetConfig::default() };
        let prepared = prepare(&config, false, &Default::default()).unwrap();
        // Another process holds the second address of the first range offered.
        let (taken_block, free_block) = (40_000, 40_100);
        let squatter =
            std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(loopback::address(taken_block, 1)), 8443));
        let Ok(_squatter) = squatter else {
            return; // Someone else holds it already: the collision exists either way.
        };
        let mut offered = vec![free_block, taken_block];
        let listeners = bind_all_with(&prepared, &mut |_| offered.pop().unwrap()).unwrap();
        let ips: Vec<IpAddr> = listeners.iter().map(|l| l[0].local_addr().unwrap().ip()).collect();
        assert_eq!(ips, [IpAddr::V4(loopback::address(free_block, 0)), IpAddr::V4(loopback::address(free_block, 1)),]);
    }
}
