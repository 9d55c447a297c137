#include "lifecycle.hpp"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <new>
#include <vector>

namespace er {

namespace {

struct Entry {
    void* self;
    const LifecycleHooks* hooks;
};

// Never destroyed: hooks may run from atexit handlers after static destructors started.
struct Registry {
    std::mutex mutex;
    std::vector<Entry> entries;
};

Registry& registry()
{
    static Registry* r = new Registry();
    return *r;
}

std::atomic<uint64_t> g_fork_generation{0};

// fork() is taken with the registry locked, so the child's copy of it is consistent.
void before_fork() { registry().mutex.lock(); }
void after_fork_in_parent() { registry().mutex.unlock(); }
void after_fork_in_child()
{
    Registry& r = registry();
    g_fork_generation.fetch_add(1, std::memory_order_relaxed);
    for (const Entry& e : r.entries)
        if (e.hooks->after_fork_in_child) e.hooks->after_fork_in_child(e.self);
    r.mutex.unlock();  // locked by this very thread in before_fork()
}

void install_fork_handlers()
{
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child); });
}

}  // namespace

void register_lifecycle(void* self, const LifecycleHooks* hooks)
{
    install_fork_handlers();
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.entries.push_back({self, hooks});
}

void unregister_lifecycle(void* self)
{
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (size_t i = 0; i < r.entries.size(); ++i)
        if (r.entries[i].self == self) {
            r.entries.erase(r.entries.begin() + (std::ptrdiff_t)i);
            return;
        }
}

void run_exit_hooks()
{
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);  // no object goes away meanwhile
    for (const Entry& e : r.entries)
        if (e.hooks->at_exit) e.hooks->at_exit(e.self);
}

uint64_t fork_generation() { return g_fork_generation.load(std::memory_order_relaxed); }

}  // namespace er
