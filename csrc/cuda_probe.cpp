// Whether a CUDA device is usable at run time. A CUDA build links the static CUDA runtime,
// which loads the driver lazily, so the module imports on machines without GPU or driver.
#include "manager.hpp"

#if defined(ESCAPE_ROOM_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace er {

int32_t cuda_device_count()
{
#if defined(ESCAPE_ROOM_WITH_CUDA)
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error so later calls start clean
        return 0;
    }
    return count;
#else
    return 0;
#endif
}

}  // namespace er
