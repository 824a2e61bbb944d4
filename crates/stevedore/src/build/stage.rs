//! Staging a build: the plan with its base pinned ([`Build::pin`], which `rebase` shares),
//! the pipeline into the blob store, and the provenance and signatures; nothing published.

use super::checks::{all_platforms, check_archive_platforms};
use super::names::{default_tags, repositories};
use super::{Build, Error, ErrorKind, Staged};
use crate::assemble::Built;
use crate::attest::{self, Attest, SigningKey};
use crate::cache::BlobStore;
use crate::lock::{Lockfile, Policy};
use crate::pipeline;
use crate::plan::{self, Plan};
use crate::reference::{Base, Reference};
use crate::registry::Registry;

/// A plan with its base pinned, and what staging it needs.
pub(super) struct Pinned {
    pub plan: Plan,
    pub key: Option<SigningKey>,
    pub registry: Registry,
    pub store: BlobStore,
    pub lock: Lockfile,
}

impl Build {
    /// Plans, pins the base in `stevedore.lock` and builds every platform into the blob store;
    /// publishes nothing. A build that is `publishing` (not `verify`'s rebuild) is signed and
    /// attested, and records its tools in the lock (or, with `--locked`, checks them there).
    pub(crate) fn stage(&self, publishing: bool) -> Result<Staged, Error> {
        let Pinned {
            plan,
            key,
            registry,
            store,
            mut lock,
        } = self.pin(publishing, self.lock)?;
        if publishing {
            self.record_tools(&mut lock, &plan.toolchain, &plan.workspace_root)?;
        }
        let push_to = if self.push {
            plan.tags.clone()
        } else {
            Vec::new()
        };
        let (mut built, ran) = pipeline::build(&plan, &store, &registry, &push_to)?;
        if publishing {
            let toolchain = attest::Toolchain {
                release: plan.toolchain.release(),
                commit: plan.toolchain.commit_hash(),
                zig: ran.zig,
                std_sources: ran.std_sources,
                executable: crate::toolchain::own_digest(),
            };
            self.attest(&plan, &mut built, key.as_ref(), &toolchain, None, &store)?;
        }
        lock.save()?;
        Ok(Staged {
            plan,
            built,
            store,
            registry,
        })
    }

    /// What every staging starts with: the plan with its base pinned under `policy`, the
    /// signing key when `signing`, the registry client, the store and the lock (not yet
    /// saved). The tools are not recorded here: a rebase runs none.
    pub(super) fn pin(&self, signing: bool, policy: Policy) -> Result<Pinned, Error> {
        let draft = plan::plan(&self.options)?;
        // The key is read (and decrypted) before the compile, so a wrong password costs seconds.
        let key = match (&draft.sign_key, signing) {
            (Some(path), true) => Some(SigningKey::load(path)?),
            _ => None,
        };
        if self.push && draft.tags.is_empty() {
            return Err(ErrorKind::PushWithoutTag.into());
        }
        if self.push && self.lock.offline {
            return Err(ErrorKind::PushOffline.into());
        }
        self.check_docker_compression(&draft)?;
        let pushed: &[Reference] = if self.push { &draft.tags } else { &[] };
        let registry = self.registry_client(pushed)?;
        let store = BlobStore::open_default()?;
        let mut lock = Lockfile::load(&draft.workspace_root)?;
        let base_pin = match &draft.base {
            Base::Image(base) => Some(lock.pin(base, policy, |b| registry.resolve(b))?),
            Base::Scratch => None,
        };
        let draft = match self.options.all_platforms {
            true => {
                let platforms = all_platforms(&draft, base_pin.as_ref(), &registry, &store)?;
                draft.with_platforms(platforms)
            }
            false => draft,
        };
        check_archive_platforms(&draft, &self.outputs)?;
        Ok(Pinned {
            plan: draft.pinned(base_pin),
            key,
            registry,
            store,
            lock,
        })
    }

    /// Adds the provenance (unless turned off) and, with a key, the signatures to `built`.
    pub(super) fn attest(
        &self,
        plan: &Plan,
        built: &mut Built,
        key: Option<&SigningKey>,
        toolchain: &attest::Toolchain,
        rebased_from: Option<&attest::Material>,
        store: &BlobStore,
    ) -> Result<(), Error> {
        let how = Attest {
            key,
            provenance: !self.no_provenance,
            rebased_from,
        };
        let repositories = repositories(&default_tags(plan));
        attest::attest(plan, built, how, &repositories, toolchain, store)?;
        Ok(())
    }
}
