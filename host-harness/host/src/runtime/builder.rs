//! How a [`Runtime`] is made: the engine's configuration (epochs, the pooling allocator sized
//! from the concurrency limit), the precompiled-code cache, and the linking of the imports.

use crate::bindings::{Defender, DefenderPre};
use crate::limits::Limits;
use crate::runtime::code_cache::{self, Source};
use crate::runtime::invocation::Invocation;
use crate::runtime::sizing::MOST_MEMORY;
use crate::runtime::{DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT, Runtime, RuntimeError};
use crate::transport::{
    ConnectionPool, DEFAULT_MAX_REQUESTS_PER_HOST, Network, Proxy, TrustedRoots,
};
use std::path::PathBuf;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The most memories, tables and core instances a pooled slot holds for one component.
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 16;
/// How much of a memory or table a pooled slot may keep resident between calls. A call of the
/// component touches less than this; it bounds the resident memory per idle slot (1000 slots:
/// at most 250 MiB more), where a kernel without PAGEMAP_SCAN keeps all of it.
const KEEP_RESIDENT_BYTES: usize = 256 * 1024;

/// Options for a [`Runtime`]; [`RuntimeBuilder::build`] compiles (or loads) the component.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    limits: Limits,
    max_in_flight: usize,
    max_requests_per_host: usize,
    cache_dir: Option<PathBuf>,
    cache_key_file: Option<PathBuf>,
    network: Network,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_requests_per_host: DEFAULT_MAX_REQUESTS_PER_HOST,
            cache_dir: None,
            cache_key_file: None,
            network: Network::default(),
        }
    }
}

impl RuntimeBuilder {
    /// The default limits per invocation (a tenant may set its own, within the pool's sizes:
    /// the memory limit here is also the largest memory a pooled slot can hold).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How many invocations run at once (at least one, at most [`MAX_IN_FLIGHT`]); the pooling
    /// allocator keeps a slot for each.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, MAX_IN_FLIGHT);
        self
    }

    /// How many of the component's requests may be in flight to one host at once (at least
    /// one), across all invocations; the rest wait their turn within their wall clock. Every
    /// tenant of the public cloud shares one API host, so this bounds the runtime's connections
    /// to it.
    pub fn max_requests_per_host(mut self, max: usize) -> Self {
        self.max_requests_per_host = max.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Keep precompiled code in `dir`, so the next process loads instead of compiling. The
    /// directory must be this user's and writable by no one else (it is made 0700); entries are
    /// authenticated with a key kept beside it, in `{dir}.key`, unless
    /// [`RuntimeBuilder::cache_key_file`] names another file.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Where the code cache's key is kept (made, readable by this user alone, if missing).
    pub fn cache_key_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.cache_key_file = Some(file.into());
        self
    }

    /// The proxy for every tenant that does not set its own (default:
    /// [`Proxy::Environment`], `HTTPS_PROXY` and the like, as curl reads them).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.network.proxy = Some(proxy);
        self
    }

    /// Roots every tenant's connections trust besides the system's and the bundled web PKI
    /// roots (a TLS-inspecting proxy's CA); a tenant's `ca-file` adds to these.
    pub fn extra_roots(mut self, roots: TrustedRoots) -> Self {
        self.network.extra_roots = roots;
        self
    }

    /// Makes the engine, gets the component's code (from the cache when it holds it), and
    /// links it once.
    pub fn build(self, component: &[u8]) -> Result<Runtime, RuntimeError> {
        let pool = ConnectionPool::new(self.network.clone(), self.max_requests_per_host);
        let engine = Engine::new(&self.config()).map_err(RuntimeError::Load)?;
        let loaded = match &self.cache_dir {
            Some(dir) => {
                let key_file = self
                    .cache_key_file
                    .clone()
                    .unwrap_or_else(|| code_cache::default_key_file(dir));
                code_cache::load(&engine, component, dir, &key_file)
            }
            None => Component::new(&engine, component).map(|component| code_cache::Loaded {
                component,
                source: Source::Compiled,
                warning: None,
            }),
        }
        .map_err(RuntimeError::Load)?;
        let component = loaded.component;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError::Load)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(RuntimeError::Load)?;
        Defender::add_to_linker::<_, HasSelf<Invocation>>(&mut linker, |s| s)
            .map_err(RuntimeError::Load)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(DefenderPre::new)
            .map_err(RuntimeError::Load)?;
        Ok(Runtime::from_parts(
            engine,
            pre,
            self.limits,
            self.max_in_flight,
            pool,
            loaded.source,
            loaded.warning,
        ))
    }

    fn config(&self) -> Config {
        let slots = u32::try_from(self.max_in_flight.saturating_add(super::CHECK_SLOTS))
            .unwrap_or(u32::MAX);
        let instances = u32::try_from(self.limits.instances).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(instances))
            .max_core_instances_per_component(instances)
            .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_stacks(slots)
            .table_elements(self.limits.table_elements)
            // A slot holds the largest memory a call sized for many devices may grow to; each
            // call's own limit is its store's (`Sizing`), and only touched pages are resident.
            .max_memory_size(MOST_MEMORY.max(self.limits.memory_bytes));
        // Reset a slot's memory by rewriting only the pages the guest touched (found with
        // Linux's PAGEMAP_SCAN where the kernel has it), instead of `madvise`: that syscall's
        // TLB shoot-downs and the page faults that follow it were half of a call's cost.
        pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config
    }
}
