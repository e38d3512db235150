//go:build amd64 && !purego

#include "textflag.h"

// func maxPool2AVX2(y *float32, arg *byte, r0, r1 *float32, outW, ch int)
// Per output position and group of eight channels: m = a, then m = t
// where t > m (ordered, so a NaN t never wins) for t = b, d, e; the
// comparison masks give the code bits: high = me|md, low = me|(mb&^md).
TEXT ·maxPool2AVX2(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ arg+8(FP), R8
	MOVQ r0+16(FP), SI
	MOVQ r1+24(FP), DX
	MOVQ outW+32(FP), CX
	MOVQ ch+40(FP), BX
	SHLQ $2, BX         // bytes per position

position:
	LEAQ (SI)(BX*1), R11 // b
	LEAQ (DX)(BX*1), R12 // e
	XORQ R9, R9

group:
	VMOVUPS   (SI)(R9*1), Y0  // m = a
	VMOVUPS   (R11)(R9*1), Y1 // b
	VCMPPS    $0x1e, Y0, Y1, Y4 // b > m (GT_OQ)
	VBLENDVPS Y4, Y1, Y0, Y0
	VMOVUPS   (DX)(R9*1), Y2  // d
	VCMPPS    $0x1e, Y0, Y2, Y5
	VBLENDVPS Y5, Y2, Y0, Y0
	VMOVUPS   (R12)(R9*1), Y3 // e
	VCMPPS    $0x1e, Y0, Y3, Y6
	VBLENDVPS Y6, Y3, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $32, DI
	TESTQ     R8, R8
	JZ        next
	VMOVMSKPS Y4, AX  // mb
	VMOVMSKPS Y5, R13 // md
	VMOVMSKPS Y6, R10 // me
	ORQ       R13, AX
	XORQ      R13, AX // mb &^ md
	ORQ       R10, AX
	ORQ       R10, R13
	MOVB      AX, (R8)
	MOVB      R13, 1(R8)
	ADDQ      $2, R8

next:
	ADDQ $32, R9
	CMPQ R9, BX
	JB   group
	LEAQ (SI)(BX*2), SI
	LEAQ (DX)(BX*2), DX
	DECQ CX
	JNZ  position
	VZEROUPPER
	RET

// func maxPool2BackAVX2(dx0, dx1, dy *float32, arg *byte, outW, ch int, lanes *[8]int32)
// Each code byte is broadcast and compared with the lanes' bits to give
// the lane masks lo and hi; a gets dy &^ (lo|hi), b dy & lo &^ hi, d
// dy & hi &^ lo, e dy & lo & hi.
TEXT ·maxPool2BackAVX2(SB), NOSPLIT, $0-56
	MOVQ    dx0+0(FP), DI
	MOVQ    dx1+8(FP), SI
	MOVQ    dy+16(FP), DX
	MOVQ    arg+24(FP), R8
	MOVQ    outW+32(FP), CX
	MOVQ    ch+40(FP), BX
	MOVQ    lanes+48(FP), AX
	VMOVDQU (AX), Y15
	SHLQ    $2, BX

bposition:
	LEAQ (DI)(BX*1), R11 // b
	LEAQ (SI)(BX*1), R12 // e
	XORQ R9, R9

bgroup:
	MOVBLZX      (R8), AX
	MOVBLZX      1(R8), R13
	ADDQ         $2, R8
	VMOVD        AX, X4
	VPBROADCASTD X4, Y4
	VPAND        Y15, Y4, Y4
	VPCMPEQD     Y15, Y4, Y4 // lo
	VMOVD        R13, X5
	VPBROADCASTD X5, Y5
	VPAND        Y15, Y5, Y5
	VPCMPEQD     Y15, Y5, Y5 // hi
	VMOVUPS      (DX), Y0
	ADDQ         $32, DX
	VORPS        Y5, Y4, Y9
	VANDNPS      Y0, Y9, Y10 // a: dy &^ (lo|hi)
	VANDNPS      Y4, Y5, Y7  // lo &^ hi
	VANDPS       Y0, Y7, Y7  // b
	VANDNPS      Y5, Y4, Y8  // hi &^ lo
	VANDPS       Y0, Y8, Y8  // d
	VANDPS       Y5, Y4, Y6
	VANDPS       Y0, Y6, Y6  // e
	VMOVUPS      Y10, (DI)(R9*1)
	VMOVUPS      Y7, (R11)(R9*1)
	VMOVUPS      Y8, (SI)(R9*1)
	VMOVUPS      Y6, (R12)(R9*1)
	ADDQ         $32, R9
	CMPQ         R9, BX
	JB           bgroup
	LEAQ         (DI)(BX*2), DI
	LEAQ         (SI)(BX*2), SI
	DECQ         CX
	JNZ          bposition
	VZEROUPPER
	RET
