import Foundation

extension URL {
  /// A path as a policy (or a kubeconfig) writes it: an absolute one as it is, any other relative
  /// to this folder, so a file works the same from whatever directory Capstan was started in.
  public func resolving(_ path: String) -> URL {
    path.hasPrefix("/") ? URL(fileURLWithPath: path) : appendingPathComponent(path)
  }
}
