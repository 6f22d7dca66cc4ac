//! Text rendering of a running fleet for people: [`render_table`], from the [`NodeInfo`]
//! snapshots that [`super::Fleet::nodes`] returns.

use super::NodeInfo;
use crate::config::CertChoice;

/// A plain-text table of a running fleet for people (`cargo xtask fleet up`): one row per node
/// and port with its role, FQDN, modelled IP, bound address and the certificates it serves.
/// Columns are padded to their widest cell.
pub fn render_table(nodes: &[NodeInfo]) -> String {
    let mut rows = vec![[
        "node".to_owned(),
        "role".to_owned(),
        "fqdn".to_owned(),
        "modelled ip".to_owned(),
        "listening on".to_owned(),
        "certificates".to_owned(),
    ]];
    for n in nodes {
        for s in &n.services {
            let certs: Vec<&str> = s.rsa.iter().chain(s.ecdsa.iter()).map(String::as_str).collect();
            let choice = match &s.choice {
                CertChoice::ClientOrder => "client order".to_owned(),
                CertChoice::ServerOrder(order) => {
                    format!("server order {}", order.iter().map(ToString::to_string).collect::<Vec<_>>().join(">"))
                }
            };
            rows.push([
                n.name.clone(),
                n.role.to_string(),
                n.fqdn.clone(),
                format!("{}:{}", n.modelled_ip, s.port),
                s.addr.to_string(),
                format!("{} ({choice}, client cert {})", certs.join(" + "), s.client_auth),
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
