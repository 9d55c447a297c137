// Errors that cross the binding as Python exceptions (SPEC §8). Invalid arguments throw
// std::invalid_argument (ValueError); these are the EscapeRoomError family.
#pragma once

#include <stdexcept>
#include <string>

namespace er {

struct Error : std::runtime_error {  // EscapeRoomError
    using std::runtime_error::runtime_error;
};

struct CudaUnavailable : Error {  // CudaUnavailableError
    using Error::Error;
};

struct ReplayFormat : Error {  // ReplayFormatError
    using Error::Error;
};

struct ReplayDivergence : Error {  // ReplayDivergenceError
    using Error::Error;
};

}  // namespace er
