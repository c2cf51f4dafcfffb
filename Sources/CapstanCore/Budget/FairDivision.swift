/// Room under a cap divided among those who ask for it in proportion to their weights, never
/// first come first served.
///
/// In any unit: replicas and GPUs come as whole numbers (exact in a `Double`), a provider's
/// tokens or requests per minute as they are declared.
enum FairDivision {
  struct Claim: Equatable {
    /// What it holds and keeps: a cap stops growth, it never takes back what runs.
    var floor: Double
    /// What it asks for; at least `floor`.
    var demand: Double
    /// It grows by this much at a time (a replica's GPUs, its tokens per minute).
    var step: Double
    var weight: Double
  }

  /// Each claim's share: its floor, then the room above the floors a step at a time, each
  /// step to the claim with the least share per weight among those that want more and fit
  /// (D'Hondt's rule over what each holds, so a claim already past its part of the cap gets
  /// the room last); ties go to the earlier claim. Where the floors alone pass the capacity,
  /// each keeps its floor and no one grows.
  static func divide(_ claims: [Claim], capacity: Double) -> [Double] {
    var shares = claims.map(\.floor)
    var room = capacity - shares.reduce(0, +)
    // A step of a millionth of the cap at least, so that a claim's declared step of 0 cannot
    // make the turns endless; each turn grants one step, so this many turns end it.
    let least = Swift.max(abs(capacity) * 1e-6, 1e-9)
    let turns = claims.reduce(0) {
      $0 + Int(Swift.min(1e6, (Swift.max(0, $1.demand - $1.floor) / Swift.max($1.step, least)).rounded(.up)))
    }
    // A share within this much of its demand or of the room is at it: the sums of steps in
    // tokens per minute are not exact.
    let slack = least * 1e-3
    for _ in 0..<turns where room > slack {
      var best: Int?
      var bestScore = Double.infinity
      for (index, claim) in claims.enumerated() {
        let step = Swift.max(claim.step, least)
        guard shares[index] + step <= claim.demand + slack, step <= room + slack, claim.weight > 0 else {
          continue
        }
        let score = (shares[index] + step) / claim.weight
        if score < bestScore {
          bestScore = score
          best = index
        }
      }
      guard let best else { break }
      let step = Swift.max(claims[best].step, least)
      shares[best] += step
      room -= step
    }
    return shares
  }
}
