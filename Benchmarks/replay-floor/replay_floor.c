// The floor for `capstan replay`: the least work any replay must do on a recording, which is
// to read every line and turn every cell into a number. Also makes the long recordings the
// benchmarks replay, from the example day.
//
//   cc -O2 -o replay-floor replay_floor.c
//   ./replay-floor make examples/llm-day.csv 30 4 > month.csv   # 30 days, each minute as 4 rows
//   ./replay-floor parse month.csv                               # rows, cells, and a checksum
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// `2023-11-16T00:00:00Z` to seconds since 1970, by hand as capstan does (no time zone database).
static long long parse_time(const char *text) {
  struct tm tm = {0};
  if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
             &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (long long)timegm(&tm);
}

static int make(const char *path, int days, int split) {
  FILE *in = fopen(path, "r");
  if (!in) { perror(path); return 1; }
  char *line = NULL;
  size_t size = 0;
  ssize_t length = getline(&line, &size, in);
  if (length <= 0) { fprintf(stderr, "%s: empty\n", path); return 1; }
  fputs(line, stdout);
  // The rows after the header, kept to repeat.
  char **rows = NULL;
  size_t count = 0;
  while ((length = getline(&line, &size, in)) > 0) {
    rows = realloc(rows, (count + 1) * sizeof *rows);
    rows[count++] = strdup(line);
  }
  for (int day = 0; day < days; day++) {
    for (size_t row = 0; row < count; row++) {
      long long base = parse_time(rows[row]);
      const char *rest = strchr(rows[row], ',');
      if (base < 0 || !rest) { fprintf(stderr, "%s: bad row %zu\n", path, row + 2); return 1; }
      for (int part = 0; part < split; part++) {
        time_t when = (time_t)(base + (long long)day * 86400 + part * (60 / split));
        struct tm tm;
        gmtime_r(&when, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fputs(stamp, stdout);
        fputs(rest, stdout);
      }
    }
  }
  return 0;
}

static int parse(const char *path) {
  FILE *in = fopen(path, "r");
  if (!in) { perror(path); return 1; }
  char *line = NULL;
  size_t size = 0;
  long long rows = 0, cells = 0;
  double checksum = 0;
  if (getline(&line, &size, in) <= 0) return 1;  // the header
  while (getline(&line, &size, in) > 0) {
    rows++;
    checksum += (double)parse_time(line);
    char *cursor = strchr(line, ',');
    while (cursor) {
      char *end;
      double value = strtod(cursor + 1, &end);
      if (end != cursor + 1) { checksum += value; cells++; }
      cursor = strchr(end, ',');
    }
  }
  printf("%lld rows, %lld numeric cells, checksum %.6g\n", rows, cells, checksum);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "make") == 0) return make(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 3 && strcmp(argv[1], "parse") == 0) return parse(argv[2]);
  fprintf(stderr, "usage: %s make DAY.csv DAYS SPLIT | parse FILE.csv\n", argv[0]);
  return 2;
}
