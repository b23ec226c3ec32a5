"""Bragg lists of single crystals: kinematic (shape-function) and dynamical (Bloch-wave).

One job a module: :mod:`.inputs` (checked crystals and parameters), :mod:`.beam`
(wavelength, excitation errors), :mod:`.orientation` (zone axes), :mod:`.kinematic`,
:mod:`.bloch` (Bloch waves: beams and structure matrix), :mod:`.potential` (structure
factors, shared by a crystal's orientations), :mod:`.propagation` (exp(iτA)e₀ through the
slab), :mod:`.assembly` (beams to a Bragg list), :mod:`.zone_series` (many zone axes at once),
:mod:`.convention` (the default settings: those of the crystal stores and the shipped crystal
model: 300 kV, k_max 2 1/Å, 20 nm, sg_max 0.02 1/Å, thermal σ 0.08 Å, spots ≥ 1e-5 of the
beam) and :mod:`.reference` (abTEM's own Bloch-wave pipeline, which tests compare against).

A *Bragg list* is a float64 array of shape ``(n, 3)`` with columns ``(qx, qy, I)``: spot
positions in 1/Å **without** 2π (q = 1/d) in the plane normal to the beam, and spot intensities
as fractions of the incident flux. The beam travels along +z. Row 0 is always the central
(transmitted) beam at (0, 0); the other rows are sorted by |q|, then by azimuth. Remove the
central beam by its position (row 0), not by brightness: in thick crystals a diffracted beam
can be brighter than the transmitted one (dynamical and kinematic lists alike). Beams that
reach the same detector position (a higher-order Laue-zone reflection right above a zero-order
one, as in orthogonal cells with a long axis along the beam) are merged into one row with the
summed intensity; beams that project onto (0, 0) are added to the central beam.

Orientation
-----------
``zone_axis_rotation(cell, uvw)`` returns the rotation R that maps the crystal's Cartesian
frame to the laboratory frame (r_lab = R r): the real-space direction [uvw] (= ``uvw @ cell``)
goes along +z (the beam), and the shortest reciprocal-lattice vector of the zero-order Laue
zone (hkl with hu + kv + lw = 0, metric of the given cell; ties broken by the
lexicographically largest (h, k, l)) goes along +x. For a cubic cell along [001] R is the
identity. The same R is what abTEM calls ``orientation_matrix`` (it rotates the cell as
``cell @ R.T``), so kinematic and dynamical spots share one frame; tests check this.

Kinematic intensities (first Born approximation, slab of thickness t)
---------------------------------------------------------------------
Reciprocal-lattice points g (Cartesian, rotated frame) with |g_xy| ≤ k_max and excitation
error |s_g| ≤ sg_max, where s_g = (k² − |k + g|²)/(2k) = −g_z − λ|g|²/2 for k = (0, 0, 1/λ)
(the same s_g abTEM puts on the diagonal of its Bloch-wave matrix). Structure factor, in Å,

    F_g = Σ_j f_j(|g|) · exp(−2π² σ_j² |g|²) · exp(−2πi g·r_j),

with Lobato electron scattering factors f_j (``form_factors``) and the isotropic Debye–Waller
factor of an rms displacement σ_j per Cartesian component (B = 8π²σ²; abTEM's convention).
Integrating the first-order amplitude over the slab, dψ_g/dz = iπ U_g/k · exp(2πi s_g z) with
U_g = γ F_g / (π V_cell) (γ: Lorentz factor, so the relativistic mass enters as in abTEM),
gives the two-beam-consistent extinction distance ξ_g = π V_cell / (λ γ |F_g|) and

    I_g^kin = (λ γ |F_g| / V_cell)² · (sin(π t s_g) / (π s_g))².

Central beam: with S = Σ_g I_g^kin, the list reports I_0 = 1/(1 + S) and I_g = I_g^kin/(1 + S).
The total flux is 1, I_0 agrees with 1 − S to first order (thin crystals), it never goes
negative when the kinematic sum exceeds 1 (thick crystals, where kinematic theory fails
anyway), and the ratios between diffracted beams are purely kinematic.

Dynamical intensities
---------------------
abTEM's Bloch-wave equations (``abtem.bloch``: Lobato parameterization, float64, its
structure matrix and metric). One structure-factor table per crystal (``structure_factor_for``,
for |g| ≤ 2·sqrt(k_max² + 0.3²) so that every coupling g − h between beams is present) is
filled on demand and shared by all its orientations. For each orientation the beams with
|s_g| ≤ sg_max and |g| ≤ g_lim (the smallest sphere holding every beam with |g_xy| ≤ k_max and
|s_g| ≤ sg_max) are coupled and the incident beam is propagated through the slab,
ψ = M exp(iπλt A) e₀, in a Lanczos subspace (accurate to 1e-12 in ψ) rather than by the
eigendecomposition of A; intensities are |ψ_g(t)|² (flux-conserving up to the tiny metric of
g_z ≠ 0 beams). The lists equal those of abTEM's ``BlochWaves`` (``reference``; tests: same
spots, intensities within 1e-6 relative, ~1e-11 measured). Only
beams with |g_xy| ≤ k_max are listed. In the thin limit the two methods agree (tests: within
2 % at 0.1 nm; at 1 nm gold already deviates by ~35 %, its extinction distances being short).
No absorptive (thermal-diffuse) potential is included: the Debye–Waller factor only damps
the elastic Fourier coefficients, and the flux stays 1.

Timings (this machine: 2 CPU cores shared with other jobs, one thread; 300 kV, k_max = 2 1/Å,
20 nm; best of repeats, ×2–5 slower under load; ``benchmarks/bench_crystal_generation.py``)
------------------------------------------------------------------------------------------------
* Importing abTEM: ~3–6 s, once per process (it is imported lazily, on the first dynamical call).
* FCC Au, conventional 4-atom cell, [011]: table ~2.5 ms once per crystal; dynamical pattern
  ~2 ms (sg_max = 0.05 1/Å, 69 beams), a few ms more for the first pattern that fills the table;
  kinematic pattern ~1 ms.
* 30-atom hexagonal cell (random P6₃/mmc Mg6Se18Si6 from pyxtal; a = 10.68, c = 8.45 Å;
  V = 835 Å³): its 20 symmetry-distinct zone axes together ~0.8 s at sg_max = 0.02 1/Å (the
  crystal store's setting; 370–640 beams) and ~2.4 s at 0.05 1/Å; [001] alone ~25 ms and
  ~55 ms once the table holds its couplings. The cost per pattern grows as the square of the
  beam count (≈ π k_max²·A_proj for a projected cell area A_proj) times the Krylov dimension
  (~30–60 at 20 nm, growing with thickness), plus the structure factors a new orientation
  adds. On a shared 2-core machine OpenBLAS with 2 threads can be several times slower than
  with one (OPENBLAS_NUM_THREADS=1; parallelise over crystals).
"""

from .beam import electron_wavelength
from .bloch import dynamical_bragg, structure_factor_for
from .convention import SIMULATION_CONVENTION
from .inputs import as_atoms
from .kinematic import kinematic_bragg
from .orientation import zone_axes, zone_axis_rotation
from .zone_series import bragg_lists_for_zone_axes

__all__ = [
    "SIMULATION_CONVENTION",
    "as_atoms",
    "bragg_lists_for_zone_axes",
    "dynamical_bragg",
    "electron_wavelength",
    "kinematic_bragg",
    "structure_factor_for",
    "zone_axes",
    "zone_axis_rotation",
]
