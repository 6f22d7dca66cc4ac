//! The targets the scenario runner tells a verifier to foresee cover every request the
//! scenario then makes: a request outside them still works, but costs the real ATS a restart.
//! Checked over the whole catalogue with the model (`ats-9.2` profile, which makes the same
//! requests as the real ATS), by a verifier that records what it is told and asked.

use std::sync::{Arc, Mutex};

use harness::pki::KeyCache;
use harness::scenario::login::LoginSpec;
use harness::scenario::run::run;
use harness::scenario::{Catalogue, RunOptions};
use harness::verifier::builtin::BuiltinFactory;
use harness::verifier::{
    Change, Family, ForeseenTarget, OriginRequest, Outcome, Profile, Session, Verifier, VerifierFactory, VerifierFault,
};

/// What one verifier was told and asked.
#[derive(Debug, Default)]
struct Seen {
    foreseen: Vec<ForeseenTarget>,
    /// Requests asked before `foresee`, and requests outside what it was told.
    unforeseen: Vec<String>,
    requests: usize,
}

/// The model, recording `foresee` and `request`.
struct Recording {
    inner: Box<dyn Verifier>,
    seen: Arc<Mutex<Seen>>,
}

impl Verifier for Recording {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn open(&mut self, session: &Session) -> Result<(), VerifierFault> {
        self.inner.open(session)
    }

    fn foresee(&mut self, targets: &[ForeseenTarget]) {
        self.seen.lock().expect("lock").foreseen.extend_from_slice(targets);
    }

    fn reconfigure(&mut self, session: &Session, change: Change) -> Result<(), VerifierFault> {
        self.inner.reconfigure(session, change)
    }

    fn request(&mut self, request: &OriginRequest) -> Result<Outcome, VerifierFault> {
        let mut seen = self.seen.lock().expect("lock");
        seen.requests += 1;
        let target = ForeseenTarget { host: request.host.clone(), port: request.port, purpose: request.purpose };
        if !seen.foreseen.contains(&target) {
            seen.unforeseen.push(format!("{}:{} {:?}", request.host, request.port, request.purpose));
        }
        drop(seen);
        self.inner.request(request)
    }
}

/// Makes [`Recording`] verifiers around the model, keeping what each saw.
struct RecordingFactory {
    model: BuiltinFactory,
    seen: Mutex<Vec<Arc<Mutex<Seen>>>>,
}

impl VerifierFactory for RecordingFactory {
    fn name(&self) -> String {
        self.model.name()
    }

    fn family(&self) -> Family {
        Family::Ats
    }

    fn make(&self) -> Result<Box<dyn Verifier>, VerifierFault> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        self.seen.lock().expect("lock").push(seen.clone());
        Ok(Box::new(Recording { inner: self.model.make()?, seen }))
    }
}

#[test]
fn every_request_of_the_catalogue_was_foreseen() {
    let catalogue = Catalogue::at(&Catalogue::workspace_root());
    let mut requests = 0;
    let mut unforeseen = Vec::new();
    for path in catalogue.files().expect("the catalogue") {
        let scenario = catalogue.load(&path).expect("a scenario");
        let factory = RecordingFactory { model: BuiltinFactory(Profile::Ats9_2), seen: Mutex::new(Vec::new()) };
        let options = RunOptions {
            verifier: &factory,
            keys: KeyCache::default(),
            login: LoginSpec::jabber(),
            fleet: harness::scenario::run::FleetTier::InProcess,
        };
        run(&scenario, &options).unwrap_or_else(|e| panic!("{}: {e}", scenario.id));
        for seen in factory.seen.lock().expect("lock").iter() {
            let seen = seen.lock().expect("lock");
            requests += seen.requests;
            unforeseen.extend(seen.unforeseen.iter().map(|r| format!("{}: {r}", scenario.id)));
        }
    }
    assert!(requests > 300, "the catalogue made only {requests} requests");
    assert_eq!(unforeseen, Vec::<String>::new(), "requests the runner did not foresee");
}
