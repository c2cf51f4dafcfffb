/// A binary min-heap.
struct MinHeap<Element: Comparable> {
  private var items: [Element] = []
  var peek: Element? { items.first }
  var isEmpty: Bool { items.isEmpty }
  var count: Int { items.count }
  /// Every element, in no particular order.
  var elements: [Element] { items }

  mutating func push(_ element: Element) {
    items.append(element)
    var child = items.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard items[child] < items[parent] else { break }
      items.swapAt(child, parent)
      child = parent
    }
  }

  mutating func pop() -> Element? {
    guard !items.isEmpty else { return nil }
    items.swapAt(0, items.count - 1)
    let top = items.removeLast()
    var parent = 0
    while true {
      let left = 2 * parent + 1
      let right = left + 1
      var smallest = parent
      if left < items.count && items[left] < items[smallest] { smallest = left }
      if right < items.count && items[right] < items[smallest] { smallest = right }
      guard smallest != parent else { break }
      items.swapAt(parent, smallest)
      parent = smallest
    }
    return top
  }

  mutating func removeAll(where shouldRemove: (Element) -> Bool) {
    let kept = items.filter { !shouldRemove($0) }
    items = []
    for element in kept { push(element) }
  }
}
