//! Reading a log line by line: per file and process, which request a warning follows, so that
//! each server's latest failure is tied to its port; memory bounded by the findings.

use super::*;

/// How many chain lines (`depth=N subject`) a process keeps until its next warning.
pub(super) const CHAIN_LINES: usize = 16;

/// Per file and pid: which transaction a message line belongs to, and UDS discovery.
#[derive(Debug, Default)]
pub(super) struct PidState {
    /// The header the next message line belongs to.
    pending: Option<(HeaderKind, Option<String>)>,
    /// The chain lines since the last warning, latest last (at most [`CHAIN_LINES`]).
    chain: Vec<(u32, String)>,
    /// Seq of the latest request Expressway-C made on its own (a `Sending Request` whose
    /// Txn-id no `Receive Request` announced: discovery) to UDS, which CUCM serves on Tomcat,
    /// port 8443. It names no host: it gives the port of a warning only when no request to
    /// that host is more recent.
    own_uds_request: Option<u64>,
}

/// The port CUCM serves UDS (`/cucm-uds/`) on: Tomcat.
pub(super) const UDS_PORT: u16 = 8443;

/// How many processes, request targets, transactions and hosts a diagnosis remembers at least
/// (the most recently written); older ones are forgotten, so that memory follows the findings,
/// not the length of the log. A warning follows its request within the same connection, a
/// response its request within seconds: thousands of requests apart is far beyond either.
pub(super) const REMEMBERED: usize = 16_384;

/// What the current file has told so far, per traffic_server process.
#[derive(Debug)]
pub(super) struct FileState {
    name: String,
    /// Lines read so far in this file.
    number: usize,
    /// The process of the latest line with a pid prefix: lines without one (`|GET ...`,
    /// `HTTPMSG:`) continue it.
    current: PidKey,
    pids: Recent<PidKey, PidState>,
    /// (process, host lowercase) -> the latest request line to it.
    targets: Recent<(PidKey, String), Target>,
    /// (process, Txn-id) -> target.
    txns: Recent<(PidKey, String), (String, u16)>,
}

impl FileState {
    fn new(name: &str) -> FileState {
        FileState {
            name: name.to_string(),
            number: 0,
            current: (None, None),
            pids: Recent::new(REMEMBERED),
            targets: Recent::new(REMEMBERED),
            txns: Recent::new(REMEMBERED),
        }
    }
}

/// A diagnosis in progress, fed a file at a time and a line at a time (see the module
/// documentation for the rules).
#[derive(Debug)]
pub(super) struct Diagnosis {
    groups: BTreeMap<GroupKey, Group>,
    /// Host (lowercase) -> the key of the latest group of that host, for ERROR lines.
    latest_group_of: Recent<String, GroupKey>,
    /// Server or address (lowercase) -> the groups of it, for answers.
    groups_of_host: HashMap<String, BTreeSet<GroupKey>>,
    seq: u64,
    pub(super) lines: usize,
    /// Whether a line looked like a log line ([`looks_like_log`]): once one has, the others
    /// are not asked.
    pub(super) saw_log_line: bool,
    file: FileState,
}

impl Default for Diagnosis {
    fn default() -> Self {
        Diagnosis {
            groups: BTreeMap::new(),
            latest_group_of: Recent::new(REMEMBERED),
            groups_of_host: HashMap::new(),
            seq: 0,
            lines: 0,
            saw_log_line: false,
            file: FileState::new(""),
        }
    }
}

impl input::LineSink for Diagnosis {
    fn file(&mut self, name: &str) {
        // Keyed by (peer, pid): a merged syslog of a cluster can hold the same pid twice.
        self.file = FileState::new(name);
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        self.seq += 1;
        self.file.number += 1;
        if !self.saw_log_line {
            self.saw_log_line = looks_like_log(line);
        }
        let (pid, body) = split_prefix(line);
        if pid.is_some() {
            self.file.current = (syslog_host(line).map(str::to_string), pid);
        }
        let Some(event) = parse_line(body) else { return };
        let header = matches!(event, LineEvent::Header { .. });
        self.event(event, line);
        // `HTTPMSG:|GET ...` on the header's own line: its message, as if on the next line.
        if header && let Some(event) = inline_message(body).and_then(parse_line) {
            self.event(event, line);
        }
    }
}

impl Diagnosis {
    /// What one event of `line` tells.
    fn event(&mut self, event: LineEvent, line: &str) {
        let seq = self.seq;
        let file = &mut self.file;
        let current = file.current.clone();
        match event {
            LineEvent::Header { kind, txn } => file.pids.entry(current).pending = Some((kind, txn)),
            LineEvent::Request { domain, host, port, path } => {
                let key = host.to_ascii_lowercase();
                let target = Target { domain, host, port, path, number: file.number, seq };
                file.targets.insert((current.clone(), key.clone()), target);
                if let Some((HeaderKind::ReceiveRequest, Some(txn))) = file.pids.entry(current.clone()).pending.take() {
                    file.txns.insert((current, txn), (key, port));
                }
            }
            LineEvent::ChainSubject { depth, subject } => {
                let chain = &mut file.pids.entry(current).chain;
                if chain.len() >= CHAIN_LINES {
                    chain.remove(0);
                }
                chain.push((depth, subject));
            }
            LineEvent::OriginRequest { path } => {
                let state = file.pids.entry(current.clone());
                if let Some((HeaderKind::SendingRequest, txn)) = state.pending.take() {
                    let own = txn.is_none_or(|t| file.txns.get(&(current, t)).is_none());
                    if own && path.starts_with("/cucm-uds/") {
                        state.own_uds_request = Some(seq);
                    }
                }
            }
            LineEvent::Status(status) => {
                if let Some((HeaderKind::SendingResponse, Some(txn))) = file.pids.entry(current.clone()).pending.take()
                    && let Some((host, port)) = file.txns.get(&(current.clone(), txn))
                    && status < 500
                {
                    let (host, port) = (host.clone(), *port);
                    self.answered(current.0, &host, port, seq);
                }
            }
            LineEvent::ConnectionFailed { server } => {
                if let Some(group) =
                    self.latest_group_of.get(&server.to_ascii_lowercase()).and_then(|k| self.groups.get_mut(k))
                {
                    group.errors += 1;
                    group.last_error_line = Some(line.to_string());
                }
            }
            LineEvent::VerifyFailed { sni, action, error, server, address, depth } => {
                let meaning = classify(&error, depth);
                if meaning == ErrorMeaning::FollowOn {
                    return;
                }
                let source = format!("{}:{}", self.file.name, self.file.number);
                let chain = std::mem::take(&mut self.file.pids.entry(current).chain);
                let subject = depth.and_then(|d| chain.into_iter().rev().find(|(at, _)| *at == d)).map(|(_, s)| s);
                let warning = LatestWarning {
                    meaning,
                    error,
                    depth,
                    action,
                    sni: sni.clone(),
                    line: line.to_string(),
                    source,
                    subject,
                    port_from: PortFrom::Unknown,
                };
                self.record(seq, server.unwrap_or(sni), address, warning);
            }
            LineEvent::SniNotInCertificate { sni, action, server, address } => {
                let source = format!("{}:{}", self.file.name, self.file.number);
                self.file.pids.entry(current).chain.clear();
                let warning = LatestWarning {
                    meaning: ErrorMeaning::Class(DiagnosisClass::NameNotInCertificate),
                    error: format!("SNI ({sni}) not in certificate"),
                    depth: None,
                    action,
                    sni: sni.clone(),
                    line: line.to_string(),
                    source,
                    subject: None,
                    port_from: PortFrom::Unknown,
                };
                self.record(seq, server.unwrap_or(sni), address, warning);
            }
        }
    }

    /// A response below 500 from `host:port` to a request `peer` relayed.
    fn answered(&mut self, peer: Option<String>, host: &str, port: u16, seq: u64) {
        let Some(keys) = self.groups_of_host.get(host) else { return };
        for key in keys {
            if let Some(group) = self.groups.get_mut(key)
                && key.2 == Some(port)
                && seq > group.seq
            {
                group.answered_by.insert(peer.clone());
            }
        }
    }

    fn record(&mut self, seq: u64, server: String, address: Option<String>, mut warning: LatestWarning) {
        let file = &mut self.file;
        let current = file.current.clone();
        let candidates = [Some(warning.sni.as_str()), Some(server.as_str()), address.as_deref()];
        let own_uds_request = file.pids.get(&current).and_then(|state| state.own_uds_request);
        let target = candidates
            .iter()
            .flatten()
            .filter_map(|host| file.targets.get(&(current.clone(), host.to_ascii_lowercase())))
            .max_by_key(|target| target.seq);
        let uds_is_newer = |target: &Target| own_uds_request.is_some_and(|uds| uds > target.seq);
        warning.port_from = match target {
            Some(target) if !uds_is_newer(target) => PortFrom::Request(MraRequest {
                decoded: format!("{}/https/{}/{}", target.domain, target.host, target.port),
                domain: target.domain.clone(),
                host: target.host.clone(),
                port: target.port,
                path: target.path.clone(),
                source: format!("{}:{}", file.name, target.number),
            }),
            _ if own_uds_request.is_some() => PortFrom::UdsDiscovery,
            _ => PortFrom::Unknown,
        };
        let port = match &warning.port_from {
            PortFrom::Request(request) => Some(request.port),
            PortFrom::UdsDiscovery => Some(UDS_PORT),
            PortFrom::Unknown => None,
        };
        let peer = syslog_host(&warning.line).map(str::to_string);
        let mut key = (server.clone(), address.clone(), port);
        // A line cut before `server=name(address)` belongs with the latest group of its host.
        if address.is_none()
            && let Some(existing) = self.latest_group_of.get(&warning.sni.to_ascii_lowercase())
        {
            key = existing.clone();
        }
        if key.2 != port {
            // The group's port came from an earlier warning: so does where it came from.
            if let Some(group) = self.groups.get(&key) {
                warning.port_from = group.latest.port_from.clone();
            }
        }
        for host in candidates.iter().flatten() {
            self.latest_group_of.insert(host.to_ascii_lowercase(), key.clone());
        }
        match self.groups.get_mut(&key) {
            // A line cut before its `Error=` counts, but does not hide what a whole line said.
            Some(group) if warning.meaning == ErrorMeaning::Other && warning.error.is_empty() => {
                group.count += 1;
                group.peers.extend(peer);
            }
            Some(group) => {
                group.count += 1;
                group.seq = seq;
                group.latest = warning;
                group.peers.extend(peer);
                group.answered_by.clear();
            }
            None => {
                for host in [Some(&key.0), key.1.as_ref()].into_iter().flatten() {
                    self.groups_of_host.entry(host.to_ascii_lowercase()).or_default().insert(key.clone());
                }
                let peers = peer.into_iter().collect();
                let group = Group {
                    latest: warning,
                    count: 1,
                    errors: 0,
                    last_error_line: None,
                    seq,
                    peers,
                    answered_by: BTreeSet::new(),
                };
                self.groups.insert(key, group);
            }
        }
    }

    pub(super) fn finish(self, files: usize, reading: Reading) -> Report {
        let findings = self
            .groups
            .into_iter()
            .map(|((server, address, port), group)| {
                // Recovered: every peer that logged the failure later got an answer from that target.
                let recovered = port.is_some()
                    && if group.peers.is_empty() {
                        group.answered_by.contains(&None)
                    } else {
                        group.peers.iter().all(|peer| group.answered_by.contains(&Some(peer.clone())))
                    };
                finding(server, address, port, group, recovered)
            })
            .collect();
        Report { files, lines: self.lines, findings, reading }
    }
}

/// A map that remembers at least the `capacity` most recently written keys, and at most twice
/// as many: when the newer half fills, the older one is dropped. What the newer half holds
/// shadows the older.
#[derive(Debug)]
pub(super) struct Recent<K, V> {
    capacity: usize,
    newer: HashMap<K, V>,
    older: HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq, V> Recent<K, V> {
    fn new(capacity: usize) -> Self {
        Recent { capacity, newer: HashMap::new(), older: HashMap::new() }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.newer.get(key).or_else(|| self.older.get(key))
    }

    fn make_room(&mut self, key: &K) {
        if self.newer.len() >= self.capacity && !self.newer.contains_key(key) {
            self.older = std::mem::take(&mut self.newer);
        }
    }

    fn insert(&mut self, key: K, value: V) {
        self.older.remove(&key);
        self.make_room(&key);
        self.newer.insert(key, value);
    }

    /// The value of `key`, its default if it has none, as the most recently written.
    fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.newer.contains_key(&key) {
            let value = self.older.remove(&key).unwrap_or_default();
            self.make_room(&key);
            return self.newer.entry(key).or_insert(value);
        }
        self.newer.entry(key).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_remembers_at_least_its_capacity_of_the_latest_writes_and_at_most_twice_that() {
        let mut recent = Recent::new(4);
        for i in 0..100u32 {
            recent.insert(i, i * 10);
            // The 4 latest are always there, with their latest value.
            for j in i.saturating_sub(3)..=i {
                assert_eq!(recent.get(&j), Some(&(j * 10)));
            }
            assert!(recent.newer.len() + recent.older.len() <= 8);
        }
        assert_eq!(recent.get(&0), None);
        // A rewritten key counts as written again, with its new value.
        recent.insert(96, 1);
        for i in 100..103 {
            recent.insert(i, 0);
        }
        *recent.entry(96) += 1;
        assert_eq!(recent.get(&96), Some(&2));
        assert_eq!(recent.get(&95), None);
    }
}
