// 8-connected component labelling of binary masks on the GPU.
//
// Algorithm: parallel union-find over the flattened pixel grid.
//   1. init:     every foreground pixel becomes its own set (parent = own
//                linear index), background pixels get parent -1.
//   2. merge:    every foreground pixel unites itself with its foreground
//                neighbours among W, NW, N and NE (the other four of the
//                eight neighbours are covered by the symmetric pixel).
//                Union always hangs the larger root below the smaller one
//                with atomicMin, so parent[x] <= x holds at all times and
//                every set ends up rooted at its smallest linear index.
//   3. flatten:  every foreground pixel points straight at its root, and the
//                root's pixel counter is incremented.
//   4. finalize: labels = root index inside the image + 1 (0 = background),
//                areas  = pixel count of the root's component (0 = background).
//
// Neighbours never cross image borders, so all N*C images of the batch are
// processed by the same launches without interfering with each other.
//
// Only headers of c10 (and the CUDA runtime) are used for the stream and
// device guard, so building does not need the cuBLAS/cuSPARSE headers.

#include <torch/extension.h>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <vector>

namespace sam2_plus_cc {

constexpr int kThreadsPerBlock = 256;

// Follows parent links until reaching a root. The loads go through a volatile
// pointer so that concurrent updates made by other blocks are observed.
__device__ __forceinline__ int find_root(const volatile int* parent, int x) {
  int p = parent[x];
  while (p != x) {
    x = p;
    p = parent[x];
  }
  return x;
}

// Merges the sets containing a and b. On return both are in the same set.
__device__ __forceinline__ void unite(int* parent, int a, int b) {
  while (true) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b) {
      return;
    }
    if (a < b) {
      const int tmp = a;
      a = b;
      b = tmp;
    }
    // a is the larger root; try to attach it below b.
    const int previous = atomicMin(parent + a, b);
    if (previous == a) {
      return;  // a was still a root and now points at b.
    }
    // Another thread changed a's parent first. Our atomicMin may have
    // replaced that link by b; in either case a, b and `previous` must end up
    // together, so continue by uniting `previous` with b.
    a = previous;
  }
}

__global__ void init_kernel(const uint8_t* __restrict__ mask,
                            int* __restrict__ parent,
                            int total) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) {
    return;
  }
  parent[idx] = mask[idx] ? idx : -1;
}

__global__ void merge_kernel(const uint8_t* __restrict__ mask,
                             int* parent,
                             int height,
                             int width,
                             int total) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total || !mask[idx]) {
    return;
  }
  const int col = idx % width;
  const int row = (idx / width) % height;
  const bool has_left = col > 0;
  const bool has_right = col + 1 < width;

  if (has_left && mask[idx - 1]) {
    unite(parent, idx, idx - 1);
  }
  if (row > 0) {
    const int up = idx - width;
    if (mask[up]) {
      unite(parent, idx, up);
    }
    if (has_left && mask[up - 1]) {
      unite(parent, idx, up - 1);
    }
    if (has_right && mask[up + 1]) {
      unite(parent, idx, up + 1);
    }
  }
}

__global__ void flatten_and_count_kernel(int* parent,
                                         int* __restrict__ counts,
                                         int total) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total || parent[idx] < 0) {
    return;
  }
  // No union happens any more, so roots are final; rewriting a non-root
  // link with its root keeps every concurrent find_root valid.
  const int root = find_root(parent, idx);
  parent[idx] = root;
  atomicAdd(counts + root, 1);
}

// In place: `parent` becomes the labels and `counts` the per-pixel areas.
// Each thread only reads its own parent entry and the counter of a root; a
// root's counter is rewritten only by the root's own thread with the same
// value, and non-root counters are never read, so no race is possible.
__global__ void finalize_kernel(int* __restrict__ parent,
                                int* __restrict__ counts,
                                int image_size,
                                int total) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) {
    return;
  }
  const int root = parent[idx];
  if (root < 0) {
    parent[idx] = 0;
    counts[idx] = 0;
    return;
  }
  const int image_start = (idx / image_size) * image_size;
  parent[idx] = root - image_start + 1;
  counts[idx] = counts[root];
}

std::vector<torch::Tensor> connected_components_cuda(torch::Tensor mask) {
  TORCH_CHECK(mask.is_cuda(), "connected_components: mask must be a CUDA tensor");
  TORCH_CHECK(mask.dim() == 4,
              "connected_components: mask must have shape [N, C, H, W], got ",
              mask.sizes());
  TORCH_CHECK(mask.scalar_type() == torch::kUInt8,
              "connected_components: mask must be uint8, got ",
              mask.scalar_type());
  TORCH_CHECK(mask.numel() <= static_cast<int64_t>(INT_MAX),
              "connected_components: mask has too many elements for int32 labels");

  const c10::cuda::CUDAGuard device_guard(mask.device());
  mask = mask.contiguous();

  const int height = static_cast<int>(mask.size(2));
  const int width = static_cast<int>(mask.size(3));
  const int total = static_cast<int>(mask.numel());

  const auto int_options =
      torch::TensorOptions().dtype(torch::kInt32).device(mask.device());
  torch::Tensor labels = torch::empty(mask.sizes(), int_options);
  torch::Tensor areas = torch::zeros(mask.sizes(), int_options);
  if (total == 0) {
    return {labels, areas};
  }

  const int blocks = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const uint8_t* mask_ptr = mask.data_ptr<uint8_t>();
  int* label_ptr = labels.data_ptr<int>();
  int* area_ptr = areas.data_ptr<int>();

  init_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(mask_ptr, label_ptr, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  merge_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(
      mask_ptr, label_ptr, height, width, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  flatten_and_count_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(
      label_ptr, area_ptr, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  finalize_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(
      label_ptr, area_ptr, height * width, total);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  return {labels, areas};
}

}  // namespace sam2_plus_cc
