;; The web page's matrix-vector kernel (page.html): out = b + W x in float32, with 128-bit SIMD.
;; W is laid out as page.html's blocked() does: rows in blocks of four, each block column by column
;; (four floats per column, one per row), the last rows % 4 rows row-major. Every argument is a byte
;; offset into the memory the page passes in as env.memory, except rows and cols.
;; Each row's sum is taken column by column in one float32 lane (no fused multiply-add), so the
;; result does not depend on the machine. matvec.wasm is this file compiled: after an edit run
;;   npm install --prefix /tmp/wabt wabt@1.0.39 && NODE_PATH=/tmp/wabt/node_modules node scripts/build_matvec.js
(module
  (import "env" "memory" (memory 1))
  (func (export "matvec")
    (param $w i32) (param $b i32) (param $x i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $xp i32) (local $step i32) (local $w2 i32) (local $w3 i32) (local $w4 i32)
    (local $xc v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s f32)
    ;; Four blocks (sixteen rows) at a time: each x[c] is read once for all four, block k's weights
    ;; starting 16 * cols * k bytes after the first's, and four independent sums keep the adder busy.
    (local.set $step (i32.shl (local.get $cols) (i32.const 4)))
    (block $quads_done
      (loop $quads
        (br_if $quads_done (i32.gt_s (i32.add (local.get $r) (i32.const 16)) (local.get $rows)))
        (local.set $a0 (v128.const f32x4 0 0 0 0))
        (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $a3 (v128.const f32x4 0 0 0 0))
        (local.set $w2 (i32.add (local.get $w) (local.get $step)))
        (local.set $w3 (i32.add (local.get $w2) (local.get $step)))
        (local.set $w4 (i32.add (local.get $w3) (local.get $step)))
        (local.set $xp (local.get $x))
        (local.set $c (local.get $cols))
        (block $cols_done
          (loop $columns
            (br_if $cols_done (i32.eqz (local.get $c)))
            (local.set $xc (v128.load32_splat (local.get $xp)))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $w)) (local.get $xc))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load (local.get $w2)) (local.get $xc))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load (local.get $w3)) (local.get $xc))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load (local.get $w4)) (local.get $xc))))
            (local.set $w (i32.add (local.get $w) (i32.const 16)))
            (local.set $w2 (i32.add (local.get $w2) (i32.const 16)))
            (local.set $w3 (i32.add (local.get $w3) (i32.const 16)))
            (local.set $w4 (i32.add (local.get $w4) (i32.const 16)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (local.set $c (i32.sub (local.get $c) (i32.const 1)))
            (br $columns)))
        (v128.store (local.get $out) (f32x4.add (v128.load (local.get $b)) (local.get $a0)))
        (v128.store offset=16 (local.get $out) (f32x4.add (v128.load offset=16 (local.get $b)) (local.get $a1)))
        (v128.store offset=32 (local.get $out) (f32x4.add (v128.load offset=32 (local.get $b)) (local.get $a2)))
        (v128.store offset=48 (local.get $out) (f32x4.add (v128.load offset=48 (local.get $b)) (local.get $a3)))
        (local.set $w (local.get $w4))
        (local.set $b (i32.add (local.get $b) (i32.const 64)))
        (local.set $out (i32.add (local.get $out) (i32.const 64)))
        (local.set $r (i32.add (local.get $r) (i32.const 16)))
        (br $quads)))
    ;; Up to three blocks of four rows left, one at a time.
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.gt_s (i32.add (local.get $r) (i32.const 4)) (local.get $rows)))
        (local.set $a0 (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $c (local.get $cols))
        (block $cols_done
          (loop $columns
            (br_if $cols_done (i32.eqz (local.get $c)))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load (local.get $w)) (v128.load32_splat (local.get $xp)))))
            (local.set $w (i32.add (local.get $w) (i32.const 16)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (local.set $c (i32.sub (local.get $c) (i32.const 1)))
            (br $columns)))
        (v128.store (local.get $out) (f32x4.add (v128.load (local.get $b)) (local.get $a0)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $blocks)))
    ;; The last rows % 4 rows, one row at a time.
    (block $rows_done
      (loop $tail
        (br_if $rows_done (i32.ge_s (local.get $r) (local.get $rows)))
        (local.set $s (f32.const 0))
        (local.set $xp (local.get $x))
        (local.set $c (local.get $cols))
        (block $cols_done
          (loop $columns
            (br_if $cols_done (i32.eqz (local.get $c)))
            (local.set $s (f32.add (local.get $s) (f32.mul (f32.load (local.get $w)) (f32.load (local.get $xp)))))
            (local.set $w (i32.add (local.get $w) (i32.const 4)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 4)))
            (local.set $c (i32.sub (local.get $c) (i32.const 1)))
            (br $columns)))
        (f32.store (local.get $out) (f32.add (f32.load (local.get $b)) (local.get $s)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $tail)))))
