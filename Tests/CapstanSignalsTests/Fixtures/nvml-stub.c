// A stand-in for libnvidia-ml.so.1 with the functions Capstan calls. Its GPUs come from the file
// named by GPUS_FILE when it is compiled (each test builds its own, so no environment variable
// is set in the test process), read at every call so a test can change them between reads:
//   one line per GPU: UUID UTILIZATION MEMORY_USED MEMORY_TOTAL STATE   (STATE: ok, lost, mig)
//   a line "no-driver" makes nvmlInit_v2 fail as it does without the kernel module.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned int gpu, memory; } utilization_t;
typedef struct { unsigned long long total, free, used; } memory_t;
typedef struct { char uuid[64]; unsigned int util; unsigned long long used, total; char state[16]; } gpu_t;

static int load(gpu_t *gpus, int *no_driver) {
  *no_driver = 0;
  FILE *file = fopen(GPUS_FILE, "r");
  if (!file) return 0;
  int count = 0;
  char line[256];
  while (fgets(line, sizeof line, file) && count < 8) {
    if (strncmp(line, "no-driver", 9) == 0) { *no_driver = 1; continue; }
    gpu_t *g = &gpus[count];
    if (sscanf(line, "%63s %u %llu %llu %15s", g->uuid, &g->util, &g->used, &g->total, g->state) == 5) count++;
  }
  fclose(file);
  return count;
}

static gpu_t gpus[8];

int nvmlInit_v2(void) { int no_driver; load(gpus, &no_driver); return no_driver ? 9 : 0; }
int nvmlShutdown(void) { return 0; }

const char *nvmlErrorString(int result) {
  switch (result) {
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 6: return "Not Found";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned int *count) { int no_driver; *count = (unsigned int)load(gpus, &no_driver); return 0; }

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
  int no_driver;
  if (index >= (unsigned int)load(gpus, &no_driver)) return 2;
  *handle = (void *)(long)(index + 1);
  return 0;
}

int nvmlDeviceGetHandleByUUID(const char *uuid, void **handle) {
  int no_driver, count = load(gpus, &no_driver);
  for (int i = 0; i < count; i++) {
    if (strcmp(gpus[i].uuid, uuid) == 0) { *handle = (void *)(long)(i + 1); return 0; }
  }
  return 6;
}

static gpu_t *find(void *handle, int *result) {
  int no_driver, count = load(gpus, &no_driver);
  long index = (long)handle - 1;
  if (index < 0 || index >= count) { *result = 2; return NULL; }
  if (strcmp(gpus[index].state, "lost") == 0) { *result = 15; return NULL; }
  *result = 0;
  return &gpus[index];
}

int nvmlDeviceGetUtilizationRates(void *handle, utilization_t *utilization) {
  int result;
  gpu_t *gpu = find(handle, &result);
  if (!gpu) return result;
  if (strcmp(gpu->state, "mig") == 0) return 3;
  utilization->gpu = gpu->util;
  utilization->memory = 0;
  return 0;
}

int nvmlDeviceGetMemoryInfo(void *handle, memory_t *memory) {
  int result;
  gpu_t *gpu = find(handle, &result);
  if (!gpu) return result;
  memory->total = gpu->total;
  memory->used = gpu->used;
  memory->free = gpu->total - gpu->used;
  return 0;
}
