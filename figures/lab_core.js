// BEGIN CORE: the mechanism's numbers and the toy, with no DOM (run by node in development).
"use strict";
var labCore = (function () {
  // ---------- small helpers ----------
  function mulberry32(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function gaussian(rand) {
    var u = 1 - rand(), v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  function sum(v) { var s = 0; for (var i = 0; i < v.length; i++) s += v[i]; return s; }
  function mean(v) { return sum(v) / v.length; }
  function variance(v) {  // population variance (1/n) sum (v - vbar)^2
    var m = mean(v), s = 0;
    for (var i = 0; i < v.length; i++) s += (v[i] - m) * (v[i] - m);
    return s / v.length;
  }
  function covariance(a, b) {
    var ma = mean(a), mb = mean(b), s = 0;
    for (var i = 0; i < a.length; i++) s += (a[i] - ma) * (b[i] - mb);
    return s / a.length;
  }
  function thirdCumulant(a, b, c) {  // (1/n) sum (a - abar)(b - bbar)(c - cbar)
    var ma = mean(a), mb = mean(b), mc = mean(c), s = 0;
    for (var i = 0; i < a.length; i++) s += (a[i] - ma) * (b[i] - mb) * (c[i] - mc);
    return s / a.length;
  }
  function logSumExp(v) {
    var top = -Infinity, i;
    for (i = 0; i < v.length; i++) if (v[i] > top) top = v[i];
    if (top === -Infinity) return -Infinity;
    var s = 0;
    for (i = 0; i < v.length; i++) s += Math.exp(v[i] - top);
    return top + Math.log(s);
  }
  function logSoftmax(v, temperature) {
    var scaled = v.map(function (x) { return x / temperature; });
    var lse = logSumExp(scaled);
    return scaled.map(function (x) { return x - lse; });
  }
  function softmax(v, temperature) {
    return logSoftmax(v, temperature).map(Math.exp);
  }
  // Kept set M: exactly k classes; ties at the k-th value go to the lowest class index.
  function topKMask(z, k) {
    var order = z.map(function (_, i) { return i; });
    order.sort(function (a, b) { return z[b] - z[a] || a - b; });
    var mask = z.map(function () { return false; });
    for (var j = 0; j < k; j++) mask[order[j]] = true;
    return mask;
  }
  function pick(v, mask, want) {
    var out = [];
    for (var i = 0; i < v.length; i++) if (mask[i] === want) out.push(v[i]);
    return out;
  }

  // ---------- T1-T5 for one teacher z, one student s ----------
  // TV(p~, U_M) of two-level logits on M: j classes d (in units of T) above the other k - j:
  // x(1 - x)c/(1 + cx) with x = j/k, c = e^d - 1.
  function twoLevelTv(k, j, d) {
    var x = j / k, c = Math.expm1(d);
    return x * (1 - x) * c / (1 + c * x);
  }
  // T3's exact worst case over logits with kept range D_M: the largest two-level value.
  function tvWorstCase(k, keptRange, temperature) {
    var best = 0, bestJ = 0;
    for (var j = 1; j < k; j++) {
      var v = twoLevelTv(k, j, keptRange / temperature);
      if (v > best) { best = v; bestJ = j; }
    }
    return { value: best, topCount: bestJ };
  }
  function klLoss(target, logQ, temperature) {  // T^2 sum target (log target - log q), 0 log 0 = 0
    var s = 0;
    for (var i = 0; i < target.length; i++) {
      if (target[i] > 0) s += target[i] * (Math.log(target[i]) - logQ[i]);
    }
    return temperature * temperature * s;
  }
  function compute(z, s, k, temperature) {
    var K = z.length, r = k / K, T = temperature;
    var mask = topKMask(z, k);
    var p = softmax(z, T);
    var sparse = z.map(function (v, i) { return mask[i] ? v : -Infinity; });
    var pSparse = softmax(sparse, T);
    var logPKept = logSoftmax(z, T).filter(function (_, i) { return mask[i]; });
    var keptMass = Math.exp(logSumExp(logPKept));
    var zMax = Math.max.apply(null, z), zMin = Math.min.apply(null, z);
    var zKept = pick(z, mask, true), sKept = pick(s, mask, true), sDropped = pick(s, mask, false);
    var keptRange = Math.max.apply(null, zKept) - Math.min.apply(null, zKept);
    var massUpper = 1 / (1 + ((K - k) / k) * Math.exp(-(zMax - zMin) / T));
    // T3: total variation between p~ and the uniform distribution on M
    var tv = 0;
    for (var i = 0; i < K; i++) if (mask[i]) tv += Math.abs(pSparse[i] - 1 / k);
    tv *= 0.5;
    var worst = tvWorstCase(k, keptRange, T);
    // T4: T^2 KL(p~ || softmax(s/T)) and its expansion in 1/T
    var logQ = logSoftmax(s, T);
    var exact = klLoss(pSparse, logQ, T);
    var orderT2 = T * T * Math.log(K / k);
    var orderT = -T * (mean(sKept) - mean(s));
    var matching = -covariance(zKept, sKept);
    var teacherMatching = 0.5 * variance(zKept) + matching;
    var studentSpread = 0.5 * variance(s);
    // the next T4 term: (1/T)[k3_M(z)/3 - k_M(z,z,s)/2 + k3_K(s)/6]
    var orderInvT = (thirdCumulant(zKept, zKept, zKept) / 3 - thirdCumulant(zKept, zKept, sKept) / 2
                     + thirdCumulant(s, s, s) / 6) / T;
    var orderOne = teacherMatching + studentSpread;
    var paperLastLine = -T * T * mean(pick(logQ, mask, true));
    // T5: exact gradient of T^2 KL at the target is T(q - p~); its teacher part splits into
    // the drive T(U_K - U_M) and the signal T(U_M - p~), orthogonal to each other.
    var drive = [], signal = [];
    for (i = 0; i < K; i++) {
      drive.push(T * (1 / K - (mask[i] ? 1 / k : 0)));
      signal.push(T * ((mask[i] ? 1 / k : 0) - pSparse[i]));
    }
    var driveNorm = Math.sqrt(drive.reduce(function (a, v) { return a + v * v; }, 0));
    var signalNorm = Math.sqrt(signal.reduce(function (a, v) { return a + v * v; }, 0));
    var driveDotSignal = 0;
    for (i = 0; i < K; i++) driveDotSignal += drive[i] * signal[i];
    var driveNormClosed = T * Math.sqrt(Math.max(1 / k - 1 / K, 0));
    return {
      K: K, k: k, ratio: r, temperature: T,
      dense_target: p, sparse_target: pSparse, kept: mask,
      kept_mass: keptMass, kept_mass_lower: r, kept_mass_upper: massUpper,
      kept_range: keptRange, student_range: Math.max.apply(null, s) - Math.min.apply(null, s),
      tv_to_uniform: tv, tv_worst_case: worst.value, tv_worst_top_count: worst.topCount,
      tv_tanh: Math.tanh(keptRange / (4 * T)),
      exact: exact, order_t2: orderT2, order_t: orderT, order_1: orderOne,
      remainder: exact - orderT2 - orderT - orderOne, order_inv_t: orderInvT,
      teacher_matching: teacherMatching, student_spread: studentSpread, matching: matching,
      constant: orderT2 + 0.5 * variance(zKept), paper_last_line: paperLastLine,
      drive_norm: driveNorm, drive_norm_closed: driveNormClosed, signal_norm: signalNorm,
      drive_dot_signal: driveDotSignal,
      signal_to_drive: k === K ? Infinity : signalNorm / driveNorm,
      signal_to_drive_order_one: k === K ? Infinity
        : Math.sqrt(variance(zKept)) / (T * Math.sqrt(1 - r)),
      logit_gap: sDropped.length ? mean(sKept) - mean(sDropped) : NaN
    };
  }

  // ---------- logit presets ----------
  function randomLogits(K, spread, seed) {
    var rand = mulberry32(seed), z = [];
    for (var i = 0; i < K; i++) z.push(spread * gaussian(rand));
    return z;
  }
  // The two-level worst case of T3: j classes at D_M, k - j at 0, the dropped ones below.
  function twoLevelLogits(K, k, keptRange, temperature) {
    var j = tvWorstCase(k, keptRange, temperature).topCount, z = [];
    for (var i = 0; i < K; i++) z.push(i < j ? keptRange : (i < k ? 0 : -1 - keptRange));
    return z;
  }

  // ---------- the toy: a 2-D task, one student per method of the registry ----------
  var TOY = { classes: 8, radius: 3.5, spread: 1.0, train: 512, test: 2000, hidden: 32,
              lr: 0.01, seed: 7, record: 10, students: ["normal_kd", "stingy_kd", "within_m_kd"] };
  // The methods of stingy.methods that the simulations train, in registry order.
  var METHODS = ["scratch", "normal_kd", "label_smoothing", "reversed_kd", "stingy_kd",
                 "tail_bucket_kd", "uniform_floor_kd", "sampled_kd", "within_m_kd"];
  function toyTask(seed) {
    var rand = mulberry32(seed), C = TOY.classes, centres = [];
    for (var c = 0; c < C; c++) {
      var a = 2 * Math.PI * c / C;
      centres.push([TOY.radius * Math.cos(a), TOY.radius * Math.sin(a)]);
    }
    function draw(n) {
      var xs = [], ys = [];
      for (var i = 0; i < n; i++) {
        var y = Math.floor(rand() * C);
        xs.push([centres[y][0] + TOY.spread * gaussian(rand),
                 centres[y][1] + TOY.spread * gaussian(rand)]);
        ys.push(y);
      }
      return { x: xs, y: ys };
    }
    return { centres: centres, train: draw(TOY.train), test: draw(TOY.test) };
  }
  // The Bayes teacher: log N(x; mu_c, spread^2 I) up to a constant (equal class priors).
  function toyTeacher(task, x) {
    var v = TOY.spread * TOY.spread;
    return task.centres.map(function (mu) {
      var dx = x[0] - mu[0], dy = x[1] - mu[1];
      return -(dx * dx + dy * dy) / (2 * v);
    });
  }
  // stingy.theory.reverse_logits: the top-1 logit stays, the others take the rest in reverse.
  function reverseLogits(z) {
    var order = z.map(function (_, i) { return i; }), out = z.slice();
    order.sort(function (a, b) { return z[b] - z[a] || a - b; });
    for (var j = 1; j < order.length; j++) out[order[j]] = z[order[order.length - j]];
    return out;
  }
  // k classes drawn with replacement from p, weight 1/k each (stingy.objective.sample_rows).
  function sampledTarget(p, k, rand) {
    var target = p.map(function () { return 0; });
    for (var n = 0; n < k; n++) {
      var u = rand(), c = 0, cumulative = p[0];
      while (u >= cumulative && c < p.length - 1) cumulative += p[++c];
      target[c] += 1 / k;
    }
    return target;
  }
  // One example's row for a method (stingy.objective): its soft target and the teacher's
  // top-k set M. Tail bucket: p on M and 0 on Mc (the dropped mass 1 - m goes to the
  // student's tail in logitGradient); scratch has no soft target.
  function teacherRow(method, z, k, T, rand) {
    var K = z.length, mask = topKMask(z, k), p = softmax(z, T);
    var sparse = softmax(z.map(function (v, i) { return mask[i] ? v : -Infinity; }), T);
    var target;
    switch (method) {
      case "scratch": target = null; break;
      case "normal_kd": target = p; break;
      case "label_smoothing": target = z.map(function () { return 1 / K; }); break;
      case "reversed_kd": target = softmax(reverseLogits(z), T); break;
      case "stingy_kd": case "within_m_kd": target = sparse; break;
      case "tail_bucket_kd": target = p.map(function (v, i) { return mask[i] ? v : 0; }); break;
      case "uniform_floor_kd":
        target = sparse.map(function (v, i) { return mask[i] ? (k / K) * v : 1 / K; }); break;
      case "sampled_kd": target = sampledTarget(p, k, rand); break;
      default: throw new Error("unknown method " + method);
    }
    return { target: target, mask: mask };
  }
  // d loss / d logits for one example: (1 - a)(softmax(s) - onehot(y)) + a t (q - target) with
  // q = softmax(s/t), t = T and a = alpha, except: scratch a = 0; label smoothing t = 1;
  // within-M q = softmax(s_M/T) on M, 0 on Mc; tail bucket target = (1 - m) q / Q on Mc, the
  // teacher's dropped mass shared as the student's (Q: q's mass on Mc).
  function logitGradient(method, s, y, row, T, alpha) {
    var a = method === "scratch" ? 0 : alpha, t = method === "label_smoothing" ? 1 : T;
    var mask = row.mask, target = row.target, q1 = softmax(s, 1);
    var q = softmax(method === "within_m_kd"
      ? s.map(function (v, i) { return mask[i] ? v : -Infinity; }) : s, t);
    if (method === "tail_bucket_kd") {
      var tail = 1 - sum(pick(target, mask, true)), Q = sum(pick(q, mask, false));
      target = target.map(function (v, i) { return mask[i] ? v : tail * q[i] / Q; });
    }
    return s.map(function (_, c) {
      return (1 - a) * (q1[c] - (c === y ? 1 : 0)) + (a ? a * t * (q[c] - target[c]) : 0);
    });
  }
  function Student(seed) {
    var rand = mulberry32(seed), H = TOY.hidden, C = TOY.classes;
    function init(n, scale) {
      var w = new Float64Array(n);
      for (var i = 0; i < n; i++) w[i] = scale * gaussian(rand);
      return w;
    }
    this.w1 = init(2 * H, 1.0); this.b1 = new Float64Array(H);
    this.w2 = init(H * C, 1 / Math.sqrt(H)); this.b2 = new Float64Array(C);
    this.params = [this.w1, this.b1, this.w2, this.b2];
    this.m = this.params.map(function (p) { return new Float64Array(p.length); });
    this.v = this.params.map(function (p) { return new Float64Array(p.length); });
    this.t = 0;
  }
  Student.prototype.forward = function (x) {
    var H = TOY.hidden, C = TOY.classes, h = new Float64Array(H), out = [];
    for (var j = 0; j < H; j++) h[j] = Math.tanh(this.w1[j] * x[0] + this.w1[H + j] * x[1] + this.b1[j]);
    for (var c = 0; c < C; c++) {
      var a = this.b2[c];
      for (j = 0; j < H; j++) a += h[j] * this.w2[j * C + c];
      out.push(a);
    }
    return { hidden: h, logits: out };
  };
  // One full-batch Adam step on examples x, y with their method rows.
  Student.prototype.step = function (x, y, rows, method, T, alpha) {
    var H = TOY.hidden, C = TOY.classes, n = x.length;
    var grads = this.params.map(function (p) { return new Float64Array(p.length); });
    for (var e = 0; e < n; e++) {
      var f = this.forward(x[e]);
      var g = logitGradient(method, f.logits, y[e], rows[e], T, alpha);
      for (var j = 0; j < H; j++) {
        var back = 0;
        for (var c = 0; c < C; c++) {
          grads[2][j * C + c] += f.hidden[j] * g[c] / n;
          back += this.w2[j * C + c] * g[c];
        }
        back *= 1 - f.hidden[j] * f.hidden[j];
        grads[0][j] += back * x[e][0] / n; grads[0][H + j] += back * x[e][1] / n;
        grads[1][j] += back / n;
      }
      for (c = 0; c < C; c++) grads[3][c] += g[c] / n;
    }
    this.t += 1;   // Adam (beta 0.9, 0.999)
    var b1 = 1 - Math.pow(0.9, this.t), b2 = 1 - Math.pow(0.999, this.t);
    for (var p = 0; p < this.params.length; p++) {
      var w = this.params[p], m = this.m[p], v = this.v[p], gr = grads[p];
      for (var i = 0; i < w.length; i++) {
        m[i] = 0.9 * m[i] + 0.1 * gr[i];
        v[i] = 0.999 * v[i] + 0.001 * gr[i] * gr[i];
        w[i] -= TOY.lr * (m[i] / b1) / (Math.sqrt(v[i] / b2) + 1e-8);
      }
    }
  };
  // The toy: one student per method (default TOY.students), all from the same start; every
  // TOY.record steps its history gets the test metrics. Sampled KD redraws its k classes per
  // example at every step, as stingy.objective does with a dense teacher.
  function Toy(k, T, alpha, methods) {
    this.k = k; this.T = T; this.alpha = alpha; this.steps = 0;
    this.methods = methods || TOY.students;
    this.task = toyTask(TOY.seed);
    this.rand = mulberry32(TOY.seed + 2);
    var task = this.task, self = this;
    function teacher(set) {
      var z = set.x.map(function (x) { return toyTeacher(task, x); });
      return { x: set.x, y: set.y, z: z, mask: z.map(function (v) { return topKMask(v, k); }) };
    }
    this.train = teacher(task.train);
    this.test = teacher(task.test);
    this.rows = {};
    this.students = {};
    this.methods.forEach(function (method) {
      self.rows[method] = self.trainRows(method);
      self.students[method] = new Student(TOY.seed + 1);
    });
    var bayes = 0;
    for (var e = 0; e < this.test.x.length; e++) if (topKMask(this.test.z[e], 1)[this.test.y[e]]) bayes += 1;
    this.bayesAccuracy = bayes / this.test.x.length;
    this.history = [{ step: 0, metrics: this.metrics() }];
  }
  Toy.prototype.trainRows = function (method) {
    var self = this;
    return this.train.z.map(function (z) { return teacherRow(method, z, self.k, self.T, self.rand); });
  };
  Toy.prototype.run = function (steps) {
    for (var t = 0; t < steps; t++) {
      for (var i = 0; i < this.methods.length; i++) {
        var method = this.methods[i];
        this.students[method].step(this.train.x, this.train.y, this.rows[method], method, this.T, this.alpha);
        if (method === "sampled_kd") this.rows[method] = this.trainRows(method);  // the next step's draw
      }
      this.steps += 1;
      if (this.steps % TOY.record === 0) this.history.push({ step: this.steps, metrics: this.metrics() });
    }
  };
  // Test accuracy (true labels) and the mean logit gap sbar_M - sbar_Mc (M: the teacher's top-k).
  Toy.prototype.metrics = function () {
    var out = {}, test = this.test, k = this.k, C = TOY.classes, self = this;
    this.methods.forEach(function (method) {
      var correct = 0, gap = 0;
      for (var e = 0; e < test.x.length; e++) {
        var s = self.students[method].forward(test.x[e]).logits, mask = test.mask[e];
        var best = 0, kept = 0, dropped = 0;
        for (var c = 0; c < C; c++) {
          if (s[c] > s[best]) best = c;
          if (mask[c]) kept += s[c]; else dropped += s[c];
        }
        if (best === test.y[e]) correct += 1;
        if (k < C) gap += kept / k - dropped / (C - k);
      }
      out[method] = { accuracy: correct / test.x.length, logit_gap: gap / test.x.length };
    });
    return out;
  };

  return {
    compute: compute, topKMask: topKMask, softmax: softmax,
    randomLogits: randomLogits, twoLevelLogits: twoLevelLogits, Toy: Toy, TOY: TOY,
    METHODS: METHODS, teacherRow: teacherRow, logitGradient: logitGradient
  };
})();
if (typeof module !== "undefined") module.exports = labCore;
// END CORE
