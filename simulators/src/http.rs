//! The HTTP/1.1 endpoints behind each TLS listener, as plain functions from a request line to a
//! status and body: Tomcat on 8443 (UDS on CUCM, EPAS SOAP on IM&P, `vmrest` on Unity) and TFTP
//! over HTTPS on 6972. Bodies are small, deterministic `text/xml` stand-ins: MRA only needs the
//! request to get through the traffic server, not the real payload.

use crate::config::Role;

/// The modelled Tomcat port.
pub const TOMCAT_PORT: u16 = 8443;
/// The modelled TFTP-over-HTTPS port.
pub const TFTP_PORT: u16 = 6972;

/// The CUCM version the UDS endpoints report.
const CUCM_VERSION: &str = "14.0.1.11900-132";

/// A response before it becomes a hyper response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    fn xml(body: String) -> Self {
        Reply { status: 200, content_type: "text/xml", body: body.into_bytes() }
    }

    fn status(status: u16) -> Self {
        let reason = match status {
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Error",
        };
        Reply {
            status,
            content_type: "text/xml",
            body: format!("<error><code>{status}</code><message>{reason}</message></error>\n").into_bytes(),
        }
    }
}

/// A matched route: the one method it takes, and how to build its reply.
type Route<'a> = (&'static str, Box<dyn FnOnce() -> Reply + 'a>);

/// What a request needs to know about the node answering it.
pub(crate) struct NodeView<'a> {
    pub(crate) role: Role,
    pub(crate) fqdn: &'a str,
    /// The System > Server names of the node's cluster, in fleet order, read at request time.
    pub(crate) cluster_servers: &'a dyn Fn() -> Vec<String>,
}

/// Escapes text for XML content.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Answers one request. `target` is the request target (path and optional query).
pub(crate) fn respond(node: &NodeView<'_>, port: u16, method: &str, target: &str) -> Reply {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Each route: does the path match, which method it takes, and the body.
    let route: Option<Route<'_>> = match (port, segments.as_slice()) {
        (TOMCAT_PORT, ["cucm-uds", "version"]) if node.role.is_cucm() => {
            Some(("GET", Box::new(|| Reply::xml(uds_version(node.fqdn)))))
        }
        (TOMCAT_PORT, ["cucm-uds", "servers"]) if node.role.is_cucm() => {
            Some(("GET", Box::new(|| Reply::xml(uds_servers(&(node.cluster_servers)())))))
        }
        (TOMCAT_PORT, ["cucm-uds", "user", user, "devices"]) if node.role.is_cucm() && !user.is_empty() => {
            Some(("GET", Box::new(move || uds_devices(user, query))))
        }
        (TOMCAT_PORT, ["EPASSoap", "service", "v105"]) if node.role == Role::Imp => {
            Some(("POST", Box::new(|| Reply::xml(epas_soap(node.fqdn)))))
        }
        (TOMCAT_PORT, ["vmrest", "version", "product"]) if node.role == Role::Unity => {
            Some(("GET", Box::new(|| Reply::xml(vmrest_product()))))
        }
        (TFTP_PORT, ["SPDefault.cnf.xml"]) if node.role.is_cucm() => {
            Some(("GET", Box::new(|| Reply::xml(sp_default(node.fqdn)))))
        }
        (TFTP_PORT, ["ITLFile.tlv"]) if node.role.is_cucm() => Some((
            "GET",
            Box::new(|| Reply { status: 200, content_type: "application/octet-stream", body: itl_file(node.fqdn) }),
        )),
        (TFTP_PORT, [file]) if node.role.is_cucm() => match file.strip_suffix(".cnf.xml.sgn") {
            Some(device) if is_device_name(device) => {
                Some(("GET", Box::new(move || Reply::xml(device_config(device, node.fqdn)))))
            }
            _ => None,
        },
        _ => None,
    };
    match route {
        None => Reply::status(404),
        Some((allowed, _)) if allowed != method && !(allowed == "GET" && method == "HEAD") => Reply::status(405),
        Some((_, body)) => body(),
    }
}

fn is_device_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn uds_version(fqdn: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <versionInformation uri=\"https://{}:{TOMCAT_PORT}/cucm-uds/version\" version=\"{CUCM_VERSION}\">\
         <version>{CUCM_VERSION}</version></versionInformation>\n",
        xml_escape(fqdn)
    )
}

fn uds_servers(servers: &[String]) -> String {
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<servers>");
    for s in servers {
        body.push_str("<server>");
        body.push_str(&xml_escape(s));
        body.push_str("</server>");
    }
    body.push_str("</servers>\n");
    body
}

/// The device-name prefixes every user owns, in the order UDS lists them.
const DEVICE_PREFIXES: [(&str, &str); 4] = [
    ("CSF", "Cisco Unified Client Services Framework"),
    ("BOT", "Cisco Dual Mode for Android"),
    ("TCT", "Cisco Dual Mode for iPhone"),
    ("TAB", "Cisco Jabber for Tablet"),
];

fn uds_devices(user: &str, query: Option<&str>) -> Reply {
    let mut max = DEVICE_PREFIXES.len();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some(value) = pair.strip_prefix("max=") {
            match value.parse::<usize>() {
                Ok(n) => max = n,
                Err(_) => return Reply::status(400),
            }
        }
    }
    let upper: String = user.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<devices>");
    for (prefix, model) in DEVICE_PREFIXES.iter().take(max) {
        body.push_str(&format!("<device><name>{prefix}{}</name><model>{model}</model></device>", xml_escape(&upper)));
    }
    body.push_str("</devices>\n");
    Reply::xml(body)
}

fn epas_soap(fqdn: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soapenv:Body><loginResponse><server>{}</server><result>ok</result></loginResponse>\
         </soapenv:Body></soapenv:Envelope>\n",
        xml_escape(fqdn)
    )
}

fn vmrest_product() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
     <ProductVersion><ProductName>Cisco Unity Connection</ProductName>\
     <Version>14.0.1.11900-36</Version></ProductVersion>\n"
        .to_owned()
}

fn sp_default(fqdn: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <SPDefaultConfig><tftpServer>{}</tftpServer><securityMode>1</securityMode></SPDefaultConfig>\n",
        xml_escape(fqdn)
    )
}

fn device_config(device: &str, fqdn: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <device><deviceName>{}</deviceName><callManager>{}</callManager></device>\n",
        xml_escape(device),
        xml_escape(fqdn)
    )
}

/// A stand-in ITL file: a TLV header and the TFTP server's name, deterministic bytes.
fn itl_file(fqdn: &str) -> Vec<u8> {
    let mut out = vec![0x01, 0x00, 0x02, 0x01, 0x02];
    let name = fqdn.as_bytes();
    out.push(0x09);
    out.extend_from_slice(&(u16::try_from(name.len()).unwrap_or(u16::MAX)).to_be_bytes());
    out.extend_from_slice(&name[..name.len().min(usize::from(u16::MAX))]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view(role: Role) -> (Role, Vec<String>) {
        (role, vec!["cucm.steven.lab".to_owned(), "10.48.36.216".to_owned()])
    }

    #[track_caller]
    fn check(role: Role, port: u16, method: &str, target: &str, status: u16, contains: &str) {
        let (role, servers) = view(role);
        let f = move || servers.clone();
        let node = NodeView { role, fqdn: "cucm.steven.lab", cluster_servers: &f };
        let reply = respond(&node, port, method, target);
        assert_eq!(reply.status, status, "{method} {target}");
        let body = String::from_utf8_lossy(&reply.body);
        assert!(body.contains(contains), "{body}");
    }

    #[test]
    fn routes_answer_as_documented() {
        let p = Role::CucmPublisher;
        check(p, 8443, "GET", "/cucm-uds/version", 200, CUCM_VERSION);
        check(p, 8443, "GET", "/cucm-uds/servers", 200, "<server>10.48.36.216</server>");
        check(p, 8443, "GET", "/cucm-uds/user/emusk/devices?max=2", 200, "BOTEMUSK");
        check(p, 8443, "GET", "/cucm-uds/user/emusk/devices?max=1", 200, "CSFEMUSK");
        check(p, 8443, "GET", "/cucm-uds/user/emusk/devices?max=x", 400, "400");
        check(p, 8443, "POST", "/cucm-uds/version", 405, "405");
        check(p, 8443, "GET", "/nothing", 404, "404");
        check(p, 6972, "GET", "/SPDefault.cnf.xml", 200, "SPDefaultConfig");
        check(p, 6972, "GET", "/CSFEMUSK.cnf.xml.sgn", 200, "CSFEMUSK");
        check(p, 6972, "GET", "/ITLFile.tlv", 200, "cucm.steven.lab");
        check(p, 6972, "GET", "/cucm-uds/version", 404, "404");
        check(Role::Imp, 8443, "POST", "/EPASSoap/service/v105", 200, "Envelope");
        check(Role::Imp, 8443, "GET", "/EPASSoap/service/v105", 405, "405");
        check(Role::Imp, 8443, "GET", "/cucm-uds/version", 404, "404");
        check(Role::Unity, 8443, "GET", "/vmrest/version/product", 200, "Unity");
    }

    #[test]
    fn device_list_is_truncated_to_max() {
        let reply = uds_devices("emusk", Some("max=2"));
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(body.matches("<device>").count(), 2);
        assert!(!body.contains("TCTEMUSK"));
    }
}
