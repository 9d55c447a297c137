// Calls that run without the GIL, and the interpreter's exit. Included by bindings.cpp only.
//
// At exit, CPython 3.11-3.13 make a daemon thread that takes the GIL back after finalisation
// began leave through pthread_exit, whose forced unwinding aborts the process ("terminate
// called without an active exception") when it crosses a noexcept C++ frame, as the
// destructor that takes the GIL back is. So no thread may take the GIL back once finalisation
// has begun. An atexit callback (they run before finalisation begins) closes the gate: calls
// still running stop after a whole step, every manager's files are finished, and a thread
// that would take the GIL back parks for good instead (only daemon threads are left by then,
// and the process exits without them).
#pragma once

#include <nanobind/nanobind.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "lifecycle.hpp"

namespace er {

class ExitGate {
public:
    static ExitGate& instance()
    {
        static ExitGate* gate = new ExitGate();  // never destroyed: parked threads use it
        return *gate;
    }

    bool closed() const { return closed_.load(); }

    // A thread starts a call without the GIL. (Atomics, not a lock: this runs on every step.)
    void enter() { inside_.fetch_add(1); }

    // A thread about to take the GIL back: true when it may (it stays counted until
    // returned()), false when the gate is closed (it must park). Sequentially consistent with
    // close_at_exit(): a thread that saw the gate open is waited for until it has the GIL.
    bool may_return()
    {
        if (!closed_.load()) return true;
        inside_.fetch_sub(1);
        return false;
    }

    void returned() { inside_.fetch_sub(1); }

    // The atexit callback, called with the GIL: closes the gate, waits (without the GIL, up to
    // `limit`) for every call to stop after its current step, then finishes every manager's
    // files.
    void close_at_exit(std::chrono::milliseconds limit)
    {
        closed_.store(true);
        Py_BEGIN_ALLOW_THREADS;
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (inside_.load() > 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        Py_END_ALLOW_THREADS;
        run_exit_hooks();
    }

private:
    std::atomic<bool> closed_{false};
    std::atomic<int64_t> inside_{0};
};

// Releases the GIL for its scope and takes it back at the end, or, once the interpreter is
// exiting, parks the thread for good instead.
class WithoutGil {
public:
    WithoutGil()
    {
        ExitGate::instance().enter();
        state_ = PyEval_SaveThread();
    }
    ~WithoutGil()
    {
        ExitGate& gate = ExitGate::instance();
        if (!gate.may_return())
            for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
        PyEval_RestoreThread(state_);
        gate.returned();
    }
    WithoutGil(const WithoutGil&) = delete;
    WithoutGil& operator=(const WithoutGil&) = delete;

    // True once the interpreter is exiting: long calls stop after their current step.
    static bool exiting() { return ExitGate::instance().closed(); }

    // Runs fn() (returning bool) with the GIL held; false, without running it, when exiting.
    template <class F>
    bool with_gil(F&& fn)
    {
        if (exiting()) return false;  // this thread is counted: the exit waits for it meanwhile
        PyEval_RestoreThread(state_);
        const bool result = fn();
        state_ = PyEval_SaveThread();
        return result;
    }

private:
    PyThreadState* state_ = nullptr;
};

}  // namespace er
