import Foundation

#if canImport(Glibc)
  import Glibc
#endif

extension Controller {
  /// glibc's `malloc_trim`, looked up at run time: `malloc.h` is not in Swift's Glibc module,
  /// and another C library has no such call (nil).
  private static let trimHeap: (@convention(c) (Int) -> Int32)? = {
    #if canImport(Glibc)
      // RTLD_DEFAULT, which glibc defines as a null handle.
      guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
      return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    #else
      return nil
    #endif
  }()

  /// A tick's transient memory (a large LIST, a query by label, the state's JSON) is freed into
  /// glibc's heap, which keeps it: with 10,000 targets, untrimmed, the process holds 350 MB of
  /// which 140 MB is live. Trimming gives the rest back to the system, once a tick.
  static func returnTransientMemory() { _ = trimHeap?(0) }
}
