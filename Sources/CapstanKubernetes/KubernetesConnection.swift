import CapstanCore
import CapstanHTTP
import Foundation
import Yams

/// Where the API server is and how Capstan proves who it is: from a kubeconfig, or from the pod
/// it runs in.
public struct KubernetesConnection: Sendable, Equatable {
  public enum BearerToken: Sendable, Equatable {
    case literal(String)
    /// Re-read periodically and after a 401, because bound service-account tokens rotate.
    case file(String)
  }

  /// `https://HOST:PORT`, without a trailing slash.
  public var server: String
  public var ca: TLSMaterial?
  /// Only when the kubeconfig says `insecure-skip-tls-verify: true`.
  public var insecureSkipTLSVerify = false
  public var token: BearerToken?
  public var clientCertificate: TLSMaterial?
  public var clientKey: TLSMaterial?
  /// The namespace of the context, or of the pod; nil when neither says.
  public var namespace: String?
  /// Where this came from, for messages: "in-cluster" or "kubeconfig PATH, context NAME".
  public var origin: String

  public init(server: String, origin: String) {
    self.server = server
    self.origin = origin
  }

  public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  /// The default folder of a pod's service-account token, CA and namespace.
  public static let serviceAccountDirectory = URL(
    fileURLWithPath: "/var/run/secrets/kubernetes.io/serviceaccount")

  /// The connection a policy asks for: its kubeconfig (and context) when it names one; otherwise
  /// in-cluster configuration when `KUBERNETES_SERVICE_HOST` is set; otherwise `KUBECONFIG` or
  /// `~/.kube/config`, as kubectl does.
  public static func resolve(
    _ settings: KubernetesSettings, baseDirectory: URL, environment: [String: String],
    serviceAccountDirectory: URL = serviceAccountDirectory
  ) throws -> KubernetesConnection {
    let home = environment["HOME"] ?? NSHomeDirectory()
    if settings.kubeconfig == nil && settings.context == nil, environment["KUBERNETES_SERVICE_HOST"] != nil {
      return try inCluster(environment: environment, directory: serviceAccountDirectory)
    }
    let files: [String]
    if let path = settings.kubeconfig {
      files = [expand(path, home: home, relativeTo: baseDirectory)]
    } else if let list = environment["KUBECONFIG"], !list.isEmpty {
      files = list.split(separator: ":").map { expand(String($0), home: home, relativeTo: baseDirectory) }
    } else {
      files = [home + "/.kube/config"]
    }
    return try fromKubeconfig(files: files, context: settings.context)
  }

  static func expand(_ path: String, home: String, relativeTo base: URL) -> String {
    if path == "~" { return home }
    if path.hasPrefix("~/") { return home + path.dropFirst() }
    return base.resolving(path).standardizedFileURL.path
  }

  // MARK: In cluster

  public static func inCluster(environment: [String: String], directory: URL) throws -> KubernetesConnection {
    guard let host = environment["KUBERNETES_SERVICE_HOST"] else {
      throw ConfigurationError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    }
    let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
    let shownHost = host.contains(":") ? "[\(host)]" : host
    var connection = KubernetesConnection(server: "https://\(shownHost):\(port)", origin: "in-cluster")
    let token = directory.appendingPathComponent("token").path
    guard FileManager.default.isReadableFile(atPath: token) else {
      throw ConfigurationError(
        "in-cluster configuration: cannot read \(token): mount a service-account token (automountServiceAccountToken: true)"
      )
    }
    connection.token = .file(token)
    connection.ca = .file(directory.appendingPathComponent("ca.crt").path)
    let namespace = try? String(contentsOf: directory.appendingPathComponent("namespace"), encoding: .utf8)
    connection.namespace = namespace?.trimmingCharacters(in: .whitespacesAndNewlines)
    return connection
  }

  // MARK: Kubeconfig

  struct Named<Value: Decodable>: Decodable {
    var name: String
    var value: Value?

    enum CodingKeys: String, CodingKey { case name, cluster, user, context }

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      name = try container.decode(String.self, forKey: .name)
      for key in [CodingKeys.cluster, .user, .context] where container.contains(key) {
        value = try container.decodeIfPresent(Value.self, forKey: key)
      }
    }
  }

  /// Accepts any YAML value; only its presence matters.
  struct Present: Decodable {
    init(from decoder: any Decoder) throws {}
  }

  struct Cluster: Decodable {
    var server, certificateAuthority, certificateAuthorityData: String?
    var insecureSkipTLSVerify: Bool?

    enum CodingKeys: String, CodingKey {
      case server
      case certificateAuthority = "certificate-authority"
      case certificateAuthorityData = "certificate-authority-data"
      case insecureSkipTLSVerify = "insecure-skip-tls-verify"
    }
  }

  struct User: Decodable {
    var token, tokenFile, clientCertificate, clientCertificateData, clientKey, clientKeyData: String?
    var exec, authProvider: Present?

    enum CodingKeys: String, CodingKey {
      case token, tokenFile, exec
      case clientCertificate = "client-certificate", clientCertificateData = "client-certificate-data"
      case clientKey = "client-key", clientKeyData = "client-key-data"
      case authProvider = "auth-provider"
    }
  }

  struct Context: Decodable {
    var cluster, user, namespace: String?
  }

  struct KubeconfigFile: Decodable {
    var clusters: [Named<Cluster>]?
    var users: [Named<User>]?
    var contexts: [Named<Context>]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
      case clusters, users, contexts
      case currentContext = "current-context"
    }
  }

  /// Reads one kubeconfig, or a `KUBECONFIG` list merged as kubectl merges it: the first file to
  /// define a name wins, and the first `current-context` set is the one used.
  public static func fromKubeconfig(files: [String], context wanted: String?) throws -> KubernetesConnection {
    var clusters: [String: (Cluster, URL)] = [:]
    var users: [String: (User, URL)] = [:]
    var contexts: [String: Context] = [:]
    var current: String?
    var read: [String] = []
    for path in files {
      guard FileManager.default.fileExists(atPath: path) else { continue }
      let text: String
      do {
        text = try String(contentsOfFile: path, encoding: .utf8)
      } catch {
        throw ConfigurationError("cannot read kubeconfig \(path): \(error.localizedDescription)")
      }
      let file: KubeconfigFile
      do {
        file = try YAMLDecoder().decode(KubeconfigFile.self, from: text)
      } catch {
        throw ConfigurationError(
          "kubeconfig \(path) is not valid: \(describe(error)): fix it, or check it with kubectl config view")
      }
      let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
      read.append(path)
      for entry in file.clusters ?? [] where clusters[entry.name] == nil {
        if let value = entry.value { clusters[entry.name] = (value, folder) }
      }
      for entry in file.users ?? [] where users[entry.name] == nil {
        if let value = entry.value { users[entry.name] = (value, folder) }
      }
      for entry in file.contexts ?? [] where contexts[entry.name] == nil {
        if let value = entry.value { contexts[entry.name] = value }
      }
      if current == nil, let name = file.currentContext, !name.isEmpty { current = name }
    }
    guard !read.isEmpty else {
      throw ConfigurationError(
        "no kubeconfig at \(files.joined(separator: ", ")): give kubernetes.kubeconfig in the policy, set KUBECONFIG, or run in a cluster"
      )
    }
    let origin = read.joined(separator: ":")
    guard let contextName = wanted ?? current else {
      throw ConfigurationError(
        "kubeconfig \(origin) has no current-context: give kubernetes.context in the policy")
    }
    guard let context = contexts[contextName] else {
      let known = contexts.keys.sorted().joined(separator: ", ")
      throw ConfigurationError(
        "kubeconfig \(origin) has no context '\(contextName)'\(known.isEmpty ? "" : " (it has: \(known))")")
    }
    guard let clusterName = context.cluster, let (cluster, clusterFolder) = clusters[clusterName] else {
      throw ConfigurationError(
        "context '\(contextName)' in \(origin) names cluster '\(context.cluster ?? "")', which is not defined"
      )
    }
    guard let server = cluster.server, server.hasPrefix("https://") || server.hasPrefix("http://") else {
      throw ConfigurationError(
        "cluster '\(clusterName)' in \(origin) has no server URL such as https://HOST:6443")
    }
    var connection = KubernetesConnection(
      server: server.hasSuffix("/") ? String(server.dropLast()) : server,
      origin: "kubeconfig \(origin), context \(contextName)")
    connection.namespace = context.namespace
    connection.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
    connection.ca = try material(
      data: cluster.certificateAuthorityData, file: cluster.certificateAuthority, folder: clusterFolder,
      what: "certificate-authority-data of cluster '\(clusterName)'")

    if let userName = context.user {
      guard let (user, userFolder) = users[userName] else {
        throw ConfigurationError(
          "context '\(contextName)' in \(origin) names user '\(userName)', which is not defined")
      }
      if user.exec != nil || user.authProvider != nil,
        user.token == nil && user.tokenFile == nil && user.clientCertificate == nil
          && user.clientCertificateData == nil
      {
        throw ConfigurationError(
          "user '\(userName)' in \(origin) signs in through an exec plugin or auth provider, which Capstan does not run: give it a token, tokenFile or client certificate (a service-account token works everywhere)"
        )
      }
      if let token = user.token, !token.isEmpty {
        connection.token = .literal(token)
      } else if let file = user.tokenFile {
        connection.token = .file(userFolder.resolving(file).path)
      }
      connection.clientCertificate = try material(
        data: user.clientCertificateData, file: user.clientCertificate, folder: userFolder,
        what: "client-certificate-data of user '\(userName)'")
      connection.clientKey = try material(
        data: user.clientKeyData, file: user.clientKey, folder: userFolder,
        what: "client-key-data of user '\(userName)'")
      if (connection.clientCertificate == nil) != (connection.clientKey == nil) {
        throw ConfigurationError(
          "user '\(userName)' in \(origin) has a client certificate without its key, or a key without its certificate: give both"
        )
      }
    }
    return connection
  }

  private static func material(data: String?, file: String?, folder: URL, what: String) throws -> TLSMaterial?
  {
    if let data {
      guard let decoded = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
        throw ConfigurationError("\(what) is not base64: paste the PEM file's base64, as kubectl writes it")
      }
      return .pem(decoded)
    }
    guard let file else { return nil }
    return .file(folder.resolving(file).path)
  }

  private static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
      DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
      let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
      return "\(path.isEmpty ? "" : "\(path): ")\(context.debugDescription)"
    default:
      return "\(error)"
    }
  }
}
