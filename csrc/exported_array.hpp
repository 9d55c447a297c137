// Arrays exported to Python (included by bindings.cpp only): a view of simulation memory as a
// DLPack / numpy / torch array, owning a share of the storage so that it outlives its manager,
// and making a CUDA consumer's stream wait for the last write (__dlpack__(stream=...)).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "manager.hpp"

namespace er::py {

namespace nb = nanobind;

inline nb::dlpack::dtype dlpack_dtype(er::DType t)
{
    static const nb::dlpack::dtype table[] = {nb::dtype<int32_t>(), nb::dtype<float>(),  nb::dtype<bool>(),
                                              nb::dtype<uint8_t>(), nb::dtype<int8_t>(), nb::dtype<uint32_t>(),
                                              nb::dtype<uint64_t>()};
    return table[(int32_t)t];
}

inline const char* dtype_name(er::DType t)
{
    static const char* table[] = {"int32", "float32", "bool", "uint8", "int8", "uint32", "uint64"};
    return table[(int32_t)t];
}

// A view of `d` for a framework, keeping `owner` alive.
template <class Framework>
nb::ndarray<Framework> view(const er::TensorDesc& d, nb::handle owner, int32_t device_type = 1, int32_t device_id = 0)
{
    std::vector<size_t> shape(d.shape.begin(), d.shape.end());
    return nb::ndarray<Framework>(d.data, shape.size(), shape.data(), owner, d.strides.data(), dlpack_dtype(d.dtype),
                                  device_type, device_id);
}

// DLPack's stream argument as a cudaStream_t to make wait (0: none): None is the legacy
// default stream (1), -1 asks for no synchronisation.
inline uintptr_t consumer_stream(nb::handle stream)
{
    if (stream.is_none()) return 1;
    const int64_t value = nb::cast<int64_t>(stream);
    if (value == 0) throw std::invalid_argument("__dlpack__: stream=0 is ambiguous for CUDA; pass 1 or 2");
    return value == -1 ? 0 : (uintptr_t)value;
}

// One exported array of a manager (the Python Tensor wraps it): its view and a share of the
// storage, so the memory outlives the manager.
struct Array {
    er::TensorDesc desc;
    std::shared_ptr<er::Storage> storage;

    nb::capsule owner() const
    {
        return nb::capsule(new std::shared_ptr<er::Storage>(storage),
                           [](void* p) noexcept { delete static_cast<std::shared_ptr<er::Storage>*>(p); });
    }
    template <class Framework>
    nb::ndarray<Framework> as() const
    {
        return view<Framework>(desc, owner(), storage->device_type, storage->device_id);
    }
    // __dlpack__: a GPU consumer that names its stream waits for the simulation's last write.
    nb::object dlpack(nb::kwargs kwargs) const
    {
        if (kwargs.contains("stream")) {
            const uintptr_t consumer = consumer_stream(kwargs.attr("pop")("stream"));
            if (consumer && storage->wait_for_writes) storage->wait_for_writes(consumer);
        }
        return nb::cast(as<nb::array_api>()).attr("__dlpack__")(**kwargs);
    }
};

// Bytes from an array's first element to the end of its last, and whether it is contiguous.
inline size_t span_of(const er::TensorDesc& d, bool& contiguous)
{
    int64_t last = 0, expected = 1;
    contiguous = true;
    for (size_t i = d.shape.size(); i-- > 0;) {
        last += (d.shape[i] - 1) * d.strides[i];
        contiguous = contiguous && (d.shape[i] == 1 || d.strides[i] == expected);
        expected *= d.shape[i];
    }
    return (size_t)(last + 1) * er::dtype_size(d.dtype);
}

// A numpy copy of a manager's array, from wherever the simulation runs.
inline nb::ndarray<nb::numpy> host_copy(er::Manager& m, const std::string& name)
{
    const er::TensorDesc d = m.array(name);
    bool contiguous;
    const size_t span = span_of(d, contiguous);
    auto* out = new uint8_t[span];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<uint8_t*>(p); });
    m.to_host(out, d.data, span);
    return view<nb::numpy>(er::TensorDesc{out, d.dtype, d.shape, d.strides}, owner);
}

// Overwrites a contiguous array of a manager from host values of its dtype and size.
inline void host_write(er::Manager& m, const std::string& name, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> v)
{
    const er::TensorDesc d = m.array(name);
    bool contiguous;
    const size_t bytes = span_of(d, contiguous);
    if (!contiguous) throw std::invalid_argument("host_write: '" + name + "' is a strided view");
    if (v.dtype() != dlpack_dtype(d.dtype) || v.nbytes() != bytes)
        throw std::invalid_argument("host_write: '" + name + "' needs " + std::to_string(bytes) + " bytes of " +
                                    dtype_name(d.dtype));
    m.write_array(name, v.data(), bytes);
}

}  // namespace er::py
