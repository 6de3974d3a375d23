// Likely label errors, confident-learning style (Northcutt, Jiang and Chuang, "Confident Learning", 2021; the
// confident joint of cleanlab). Input: for every image, class probabilities from a model that did not see it, and
// the label it was given.
//
// - Each class j has a threshold t_j: the mean probability of j over the images labelled j (the class's mean
//   self-confidence). A class that the model finds hard has a low threshold, an easy one a high threshold, so
//   there is no single global cut.
// - An image counts as confidently of class j where p_j >= t_j; where several classes pass, the most probable of
//   them. Counting images by given label and confident class gives the confident joint, an estimate of how many
//   images of each label are truly of each other class.
// - For each pair (given y, truly j), that many images given y are taken, those with the largest margin
//   p_j - p_y, leaving out any the model classifies as y (cleanlab's "prune by noise rate").
// - The errors are ranked by the normalized margin p_given - max_{j != given} p_j, most negative first; the score
//   reported is (max_{j != given} p_j - p_given + 1) / 2, in [0, 1], higher is more suspicious.

export interface RankedLabelIssue {
  /** Position of the image in the input. */
  index: number;
  label: number;
  suggested: number;
  score: number;
}

/** Mean probability of each class over the images given that label; Infinity for a class no image has. */
export function classThresholds(probabilities: readonly ArrayLike<number>[], labels: readonly number[], numClasses: number): number[] {
  const sum = new Array<number>(numClasses).fill(0);
  const count = new Array<number>(numClasses).fill(0);
  probabilities.forEach((p, i) => {
    const y = labels[i]!;
    sum[y] += p[y]!;
    count[y] += 1;
  });
  return sum.map((s, j) => (count[j] ? s / count[j]! : Infinity));
}

/** The most probable class whose probability reaches its threshold; null where none does. */
export function confidentClass(p: ArrayLike<number>, thresholds: readonly number[]): number | null {
  let best: number | null = null;
  for (let j = 0; j < thresholds.length; j++) {
    if (p[j]! >= thresholds[j]! && (best === null || p[j]! > p[best]!)) best = j;
  }
  return best;
}

/**
 * The confident joint: counts[y][j] is the number of images given label y whose confident class is j (images
 * with no confident class are not counted), calibrated so that each row adds up to the images given y.
 */
export function confidentJoint(probabilities: readonly ArrayLike<number>[], labels: readonly number[], thresholds: readonly number[]): number[][] {
  const k = thresholds.length;
  const counts = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const given = new Array<number>(k).fill(0);
  probabilities.forEach((p, i) => {
    const y = labels[i]!;
    given[y] += 1;
    const j = confidentClass(p, thresholds);
    if (j !== null) counts[y]![j]! += 1;
  });
  return counts.map((row, y) => {
    const sum = row.reduce((a, b) => a + b, 0);
    return sum ? row.map((c) => (c * given[y]!) / sum) : row;
  });
}

/**
 * The likely label errors, most suspicious first (cleanlab's default, "prune by noise rate"): for each pair of a
 * given label y and another class j, the confident joint estimates how many images given y are truly j, and that
 * many of the images given y with the largest margin p_j - p_y are taken; an image the model classifies as its
 * given label is never taken. The suggested label is the image's confident class where it has one other than y,
 * else its most probable other class. `thresholds` default to those of the images themselves; images scored
 * apart (a validation split) pass the training images' thresholds.
 */
export function rankLabelIssues(
  probabilities: readonly ArrayLike<number>[],
  labels: readonly number[],
  numClasses: number,
  thresholds: readonly number[] = classThresholds(probabilities, labels, numClasses),
): RankedLabelIssue[] {
  const joint = confidentJoint(probabilities, labels, thresholds);
  const taken = new Set<number>();
  for (let y = 0; y < numClasses; y++) {
    const given = labels.flatMap((l, i) => (l === y ? [i] : []));
    for (let j = 0; j < numClasses; j++) {
      const count = j === y ? 0 : Math.round(joint[y]![j]!);
      if (count <= 0) continue;
      const margin = (i: number) => probabilities[i]![j]! - probabilities[i]![y]!;
      for (const i of [...given].sort((a, b) => margin(b) - margin(a) || a - b).slice(0, count)) taken.add(i);
    }
  }
  const issues: RankedLabelIssue[] = [];
  for (const index of taken) {
    const p = probabilities[index]!;
    const label = labels[index]!;
    let other = -1;
    for (let j = 0; j < numClasses; j++) if (j !== label && (other < 0 || p[j]! > p[other]!)) other = j;
    // The given label is the most probable one: not an error.
    if (p[label]! >= p[other]!) continue;
    const confident = confidentClass(p, thresholds);
    const suggested = confident !== null && confident !== label ? confident : other;
    issues.push({ index, label, suggested, score: (p[other]! - p[label]! + 1) / 2 });
  }
  return issues.sort((a, b) => b.score - a.score || a.index - b.index);
}
