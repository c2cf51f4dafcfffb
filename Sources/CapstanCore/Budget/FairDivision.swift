/// Room under a cap divided among those who ask for it in proportion to their weights, never
/// first come first served.
enum FairDivision {
  struct Claim: Equatable {
    /// What it holds and keeps: a cap stops growth, it never takes back what runs.
    var floor: Int
    /// What it asks for; at least `floor`.
    var demand: Int
    /// It grows by this many units at a time (a replica's GPUs).
    var step: Int
    var weight: Double
  }

  /// Each claim's share: its floor, then the room above the floors a step at a time, each
  /// step to the claim with the least share per weight among those that want more and fit
  /// (D'Hondt's rule over what each holds, so a claim already past its part of the cap gets
  /// the room last); ties go to the earlier claim. Where the floors alone pass the capacity,
  /// each keeps its floor and no one grows.
  static func divide(_ claims: [Claim], capacity: Int) -> [Int] {
    var shares = claims.map(\.floor)
    var room = capacity - shares.reduce(0, +)
    // Each turn grants at least one unit of what is asked above the floors, so this many
    // turns end it.
    let asked = claims.reduce(0) { $0 + max(0, $1.demand - $1.floor) }
    for _ in 0..<max(0, asked) where room > 0 {
      var best: Int?
      var bestScore = Double.infinity
      for (index, claim) in claims.enumerated() {
        let step = max(1, claim.step)
        guard shares[index] + step <= claim.demand, step <= room, claim.weight > 0 else { continue }
        let score = Double(shares[index] + step) / claim.weight
        if score < bestScore {
          bestScore = score
          best = index
        }
      }
      guard let best else { break }
      let step = max(1, claims[best].step)
      shares[best] += step
      room -= step
    }
    return shares
  }
}
