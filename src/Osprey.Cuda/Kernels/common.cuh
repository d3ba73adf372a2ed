// Shared by every Osprey kernel source (prepended by KernelCache; no system headers needed).
typedef long long i64;
typedef unsigned long long u64;
#define MAX_RANK 8

struct half_t { unsigned short x; };
struct bf16_t { unsigned short x; };
