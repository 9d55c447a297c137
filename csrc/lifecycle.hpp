// Two process events that objects owning threads, locks and files must survive:
// - fork(): the child holds a copy of every object but only the forking thread. Worker
//   threads, locks held by other threads and files shared with the parent must be repaired
//   or given up in the child (AsyncVectorEnv and DataLoader fork processes that hold envs).
// - the Python interpreter's exit: daemon threads may still be inside a step; open files must
//   be finished before the process goes (the binding's exit hook calls run_exit_hooks()).
// Objects register a hook for each event; the hooks run in registration order.
#pragma once

#include <cstdint>

namespace er {

struct LifecycleHooks {
    // In the child, right after fork(), on the only thread there is. Must not block.
    void (*after_fork_in_child)(void* self) = nullptr;
    // At interpreter exit, once no thread is inside a call: finish files.
    void (*at_exit)(void* self) = nullptr;
};

// Registers `self` (until unregister_lifecycle(self)); `hooks` must outlive the registration.
void register_lifecycle(void* self, const LifecycleHooks* hooks);
void unregister_lifecycle(void* self);

// Runs every registered at_exit hook.
void run_exit_hooks();

// How many fork()s this process descends from since the first registration: a value saved at
// construction tells an object whether it lives in a child of the process that built it.
uint64_t fork_generation();

}  // namespace er
