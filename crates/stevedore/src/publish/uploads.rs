//! What the pushes of one run share: a bound on uploads in flight (`--jobs`), and which blobs
//! are already on a registry, so that images pushed side by side (`--workspace`) upload a
//! shared blob, such as a base layer from another registry, once and mount it everywhere else.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::digest::Digest;
use crate::reference::Reference;

/// Uploads at once by default: enough to overlap round trips, few enough for a small runner.
pub const DEFAULT_JOBS: usize = 3;

/// Shared by every push of a run (clones of a `Build` share one).
#[derive(Debug)]
pub struct Uploads {
    jobs: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Uploads running now, at most `jobs`.
    running: usize,
    /// Pushes waiting for a slot or for another push's upload of the same blob.
    waiting: usize,
    /// Per registry host and blob: being uploaded, or which repository has it.
    blobs: HashMap<(String, Digest), Origin>,
}

#[derive(Debug, Clone)]
enum Origin {
    InFlight,
    In(Reference),
}

/// What a push should do about a blob the target repository lacks.
pub(super) enum Claim<'a> {
    /// Another repository on the same registry has it: mount from there.
    MountFrom(Reference),
    /// Nobody has it: upload it, then say where with [`Upload::done`].
    Upload(Upload<'a>),
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads::new(DEFAULT_JOBS)
    }
}

impl Uploads {
    /// At most `jobs` blob uploads at once (at least one).
    pub fn new(jobs: usize) -> Self {
        Uploads {
            jobs: jobs.max(1),
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    /// How many uploads may run at once: also how many blobs one push works on at a time.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Decides who uploads `digest` to `repo`'s registry. While another push uploads it, waits
    /// for that upload to end: then the blob is mounted from there, or, if it failed, uploaded.
    pub(super) fn claim(&self, repo: &Reference, digest: &Digest) -> Claim<'_> {
        let key = (repo.registry().to_owned(), digest.clone());
        let mut state = self.lock();
        loop {
            match state.blobs.get(&key) {
                Some(Origin::In(from)) if from.name() != repo.name() => {
                    return Claim::MountFrom(from.clone())
                }
                Some(Origin::InFlight) => state = self.wait(state),
                _ => break,
            }
        }
        state.blobs.insert(key.clone(), Origin::InFlight);
        Claim::Upload(self.take_slot(state, Some(key)))
    }

    /// A slot to upload a blob whatever other pushes did with it: for when the registry
    /// refused to mount it from where they sent it.
    pub(super) fn slot(&self) -> Upload<'_> {
        self.take_slot(self.lock(), None)
    }

    fn take_slot(
        &self,
        mut state: MutexGuard<'_, State>,
        key: Option<(String, Digest)>,
    ) -> Upload<'_> {
        while state.running >= self.jobs {
            state = self.wait(state);
        }
        state.running += 1;
        Upload {
            uploads: self,
            key,
            done: false,
        }
    }

    /// Notes that `repo` holds `digest` (it was there, or mounted), for later mounts.
    pub(crate) fn holds(&self, repo: &Reference, digest: &Digest) {
        let key = (repo.registry().to_owned(), digest.clone());
        let mut state = self.lock();
        if !matches!(state.blobs.get(&key), Some(Origin::InFlight)) {
            state.blobs.insert(key, Origin::In(repo.clone()));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking push leaves the map consistent: every change is one statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, mut state: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        state.waiting += 1;
        let mut state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        state.waiting -= 1;
        state
    }
}

/// The right to upload one blob, holding one of the `jobs` slots until dropped.
pub(super) struct Upload<'a> {
    uploads: &'a Uploads,
    /// The blob others wait for, when this upload was claimed for it.
    key: Option<(String, Digest)>,
    done: bool,
}

impl Upload<'_> {
    /// The upload to `repo` succeeded: others mount from there.
    pub(super) fn done(mut self, repo: &Reference) {
        self.done = true;
        if let Some(key) = self.key.clone() {
            self.uploads
                .lock()
                .blobs
                .insert(key, Origin::In(repo.clone()));
        }
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        let mut state = self.uploads.lock();
        state.running -= 1;
        if let (Some(key), false) = (&self.key, self.done) {
            // Failed: whoever waits for this blob uploads it instead.
            state.blobs.remove(key);
        }
        drop(state);
        self.uploads.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> Reference {
        name.parse().unwrap()
    }

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[test]
    fn a_blob_uploaded_to_one_repository_is_mounted_into_the_next() {
        let uploads = Uploads::new(2);
        let (a, b) = (repo("reg.test/team/a"), repo("reg.test/team/b"));
        let Claim::Upload(upload) = uploads.claim(&a, &digest(1)) else {
            panic!("the first push uploads");
        };
        upload.done(&a);
        match uploads.claim(&b, &digest(1)) {
            Claim::MountFrom(from) => assert_eq!(from.name(), a.name()),
            Claim::Upload(_) => panic!("the second push mounts"),
        }
        // Another registry cannot mount from the first one.
        assert!(matches!(
            uploads.claim(&repo("other.test/team/b"), &digest(1)),
            Claim::Upload(_)
        ));
    }

    /// Spins (yielding) until `n` pushes wait: a claim is known to block, with no sleep.
    fn until_waiting(uploads: &Uploads, n: usize) {
        while uploads.lock().waiting != n {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_push_waits_for_the_upload_in_flight_then_mounts_or_uploads_itself() {
        let uploads = Uploads::new(2);
        let (a, b) = (repo("reg.test/a"), repo("reg.test/b"));
        for succeeds in [true, false] {
            let d = digest(u8::from(succeeds));
            let Claim::Upload(first) = uploads.claim(&a, &d) else {
                panic!("the first push uploads");
            };
            std::thread::scope(|s| {
                let waiter = s.spawn(|| match uploads.claim(&b, &d) {
                    Claim::MountFrom(from) => Some(from.name()),
                    Claim::Upload(_) => None,
                });
                until_waiting(&uploads, 1);
                match succeeds {
                    true => first.done(&a),
                    false => drop(first),
                }
                let mounted = waiter.join().unwrap();
                assert_eq!(mounted, succeeds.then(|| a.name()), "succeeded: {succeeds}");
            });
        }
    }

    #[test]
    fn no_more_than_jobs_uploads_run_at_once() {
        let uploads = Uploads::new(1);
        let a = repo("reg.test/a");
        let first = uploads.claim(&a, &digest(3));
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                let claim = uploads.claim(&a, &digest(4));
                let running = uploads.lock().running;
                drop(claim);
                running
            });
            until_waiting(&uploads, 1);
            assert_eq!(
                uploads.lock().running,
                1,
                "the second upload waits for a slot"
            );
            drop(first);
            assert_eq!(second.join().unwrap(), 1);
        });
        assert_eq!(uploads.lock().running, 0);
    }
}
