// A build without CUDA (ESCAPE_ROOM_CUDA=OFF, or no nvcc): no GPU is usable, and a CUDA
// manager explains why. cuda_backend.cu replaces this file when CUDA is built.
#include "backend.hpp"
#include "errors.hpp"

namespace er {

bool cuda_built() { return false; }
int32_t cuda_device_count() { return 0; }
std::string cuda_unavailable_reason()
{
    return "this build of escape_room_env has no CUDA backend (it was built without nvcc, or with "
           "ESCAPE_ROOM_CUDA=OFF)";
}

std::unique_ptr<Backend> make_cuda_backend(const SimState&, const LevelData*, uint64_t, int32_t)
{
    throw CudaUnavailable("this build of escape_room_env has no CUDA backend; use ExecMode.CPU");
}

}  // namespace er
