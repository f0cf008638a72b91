"""Every named tunable of scalp3d in one place: its default, its unit (in its name) and its allowed range.

Defaults come from ../shared/DOMAIN.md (SMP in figures). Algorithms import these names; no bare literal tolerances
live in the algorithms. The plan file (see :mod:`scalp3d.design`) overrides the plan-level ones within these ranges.
"""
from __future__ import annotations

# --- units -----------------------------------------------------------------------------------------------------
#: plausible head width (left-right, across the skull), used to detect a scan's units
HEAD_WIDTH_MIN_MM = 140.0
HEAD_WIDTH_MAX_MM = 220.0
#: the width a suggested --scale aims at, when a scan's unit is wrong or cannot be detected
HEAD_WIDTH_TYPICAL_MM = 170.0
#: distance between the preauricular points (LPA, RPA) of a plausible head: checked on estimated and given landmarks
EAR_DISTANCE_RANGE_MM = (100.0, 220.0)
#: units a scan may be given in, with their size in millimetres
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4}

# --- surface -----------------------------------------------------------------------------------------------------
#: longest edge on the planned surface: finer than the density ramps, coarse enough to stay fast
SURFACE_MAX_EDGE_MM = 2.0
#: Loop subdivisions applied to the embedded sample head (2,033 vertices -> about 130k; mean edge about 1.2 mm)
SAMPLE_HEAD_SUBDIVISIONS = 3
#: Poisson reconstruction depth for point clouds and the quantile of low-support vertices trimmed
POISSON_DEPTH_RANGE = (7, 10)         # octree depth chosen so the finest cell is about the point spacing
POISSON_TRIM_QUANTILE = 0.02
#: point clouds: thinned to this spacing before meshing (0.2 mm noise averages out; Poisson stays fast), outliers
#: are points whose mean distance to their OUTLIER_NEIGHBOURS nearest is over OUTLIER_STD_RATIO std above the mean
CLOUD_SPACING_MM = 1.2
OUTLIER_NEIGHBOURS = 20
OUTLIER_STD_RATIO = 2.5
#: normals are oriented consistently on a coarse copy (this spacing) and carried to every point
ORIENT_SPACING_MM = 4.0
#: a reconstructed vertex farther than this many point spacings from every scanned point is not measured
SUPPORT_SPACINGS = 3.0
#: holes up to this area are filled smoothly and marked "filled"; larger gaps are left open and reported
HOLE_MAX_AREA_CM2 = 80.0
#: isotropic remeshing: target edge (mm), iterations; scans denser than DECIMATE_ABOVE_FACES are decimated first
REMESH_EDGE_MM = 1.0
REMESH_ITERATIONS = 3
DECIMATE_ABOVE_FACES = 1_500_000
#: the neck cut: the narrowest horizontal section between these heights below the tragi (head frame, mm)
NECK_SEARCH_MM = (40.0, 220.0)
HEAD_MIN_THICKNESS_RATIO = 0.3        # parts thinner than this (smallest over largest extent) count as flat background
NECK_SAMPLES = 200_000                # surface points the sections are measured on
NECK_CYLINDER_FRAC = 0.55            # sections are measured within this fraction of the tragi's distance of the axis
NECK_MARGIN_MM = -15.0                # the cut is this far below (negative: above) the lowest full ring (the neck)
#: input points used for the deviation figures of the report
DEVIATION_SAMPLES = 200_000
#: a scan with fewer points than this cannot hold a head
MIN_SCAN_POINTS = 100

# --- design (plan defaults, DOMAIN.md) ---------------------------------------------------------------------------
CORE_DENSITY_PER_CM2 = 100.0          # about 1 mm spacing, natural FU density 80-100/cm2
HAIRLINE_DENSITY_PER_CM2 = 40.0       # natural hairline 38-78, 51 typical; the sparse edge of the transition band
DENSITY_MAX_PER_CM2 = 160.0           # above this dots merge ("helmet look")
TRANSITION_MM = 25.0                  # 2-3 cm transition band
HAIRLINE_HEIGHT_MM = 80.0             # mid-frontal point above the glabella, along the skin (7 cm aggressive, 10 conservative)
HAIRLINE_HEIGHT_RANGE_MM = (55.0, 120.0)
GLABELLA_ABOVE_NASION_MM = 12.0       # along the midline profile, when no glabella is given
SIDE_HAIRLINE_ABOVE_TRAGUS_MM = 45.0  # the treated area clears the top of the ear by about 1-2 cm
NAPE_HAIRLINE_BELOW_TRAGUS_MM = 10.0  # at the back, the treated area reaches down to the nape
FRONTOTEMPORAL_HALF_WIDTH_MM = 45.0   # each frontotemporal point's distance from the midline (about above the mid-pupil)
RECESSION_MM = 10.0                   # frontotemporal points this far above the mid-frontal level, along the skin:
#                                       the frontotemporal angle is not filled (plan for future loss)
TEMPLE_AHEAD_OF_TRAGUS_MM = 50.0      # temple point: about 1 cm behind a vertical through the outer eye corner
TEMPLE_ABOVE_TRAGUS_MM = 50.0
#: azimuths (degrees from the front) where the edge leaves the side height behind the ear and reaches the nape height
NAPE_AZIMUTH_DEG = (120.0, 160.0)
HAIRLINE_FILE_MAX_POINTS = 10_000
#: existing hair from colour: skin reference on the forehead (this band above the glabella, this half width), hair
#: counted as full cover at this fraction of the skin's luminance, cover smoothed over this many 1-ring passes
HAIR_SKIN_BAND_MM = (5.0, 30.0)
HAIR_SKIN_HALF_WIDTH_MM = 25.0
HAIR_FULL_COVER_LUMINANCE = 0.35
HAIR_SMOOTHING_PASSES = 6
HAIR_MIN_SHARE = 0.25
DENSITY_MODE_FEATHER_MM = 10.0       # mode 'density': the treated area's edge feathers over this width
SESSION_FRACTIONS = (0.3, 0.7, 1.0)   # cumulative share of the final density after each session (Liu et al. 2025)
SESSION_SHADES = ("light", "medium", "dark")

# --- needle (plan defaults) --------------------------------------------------------------------------------------
NEEDLE = "0603-1RL"                   # 0.20 mm single point
NEEDLE_DIAMETER_MM = {"0603-1RL": 0.20, "0603-3RL": 0.20, "0803-1RL": 0.25, "0803-3RL": 0.25, "0501-1RL": 0.18}
DOT_SIZE_RANGE_MM = (0.05, 0.5)       # healed dots 0.1-0.25 mm wide (DOMAIN.md)
DEPTH_MM = 0.6                        # upper papillary dermis; clinics quote 0.25-2 mm
DEPTH_RANGE_MM = (0.2, 2.0)
STANDOFF_MM = 3.0                     # approach point above the skin, along the normal
STANDOFF_RANGE_MM = (1.0, 20.0)
CLEARANCE_MM = 1.5                    # travel never comes closer than this to the skin
SAFE_SHELL_MARGIN_MM = 15.0           # long jumps go out to a shell this far beyond the head's bounding sphere
PLUNGE_FEED_MM_PER_MIN = 1200.0
TRAVEL_FEED_MM_PER_MIN = 6000.0
DWELL_S = 0.05
FEED_RANGE_MM_PER_MIN = (10.0, 60000.0)
DWELL_RANGE_S = (0.0, 5.0)
WORKSPACE_HALF_MM = 1000.0            # default machine: a cube of +-1 m around the scan's origin
TILT_LIMIT_DEG = 5.0                  # needle axis vs skin normal

# --- placement ---------------------------------------------------------------------------------------------------
CANDIDATES_PER_DOT = 5                # weighted sample elimination pool size (FINDINGS: 5 -> rho 0.70)
JOINT_CANDIDATES_PER_DOT = 2          # the same when sessions are relaxed jointly, which evens the start out (cap:
                                      # union rho 0.81 with 2 or 5, 0.8 s less; sample head: sessions alone better)
ELIMINATION_ALPHA = 8.0               # weight exponent (Yuksel 2015)
ELIMINATION_BETA = 0.65               # r_min = r_max * (1 - (N/M)^gamma) * beta clamp (Yuksel 2015)
ELIMINATION_GAMMA = 1.5
SESSION_MODE = "joint"                # sessions relaxed together: each alone as well spread as the union ("subsets":
#                                       faster, sessions picked from the relaxed union; sessions alone less even)
RELAX_PASSES = 16                     # relaxation passes after selection: rho 0.70 -> 0.78 on the benchmark cap
RELAX_TARGET = 0.82                   # pairs closer than this fraction of the local d_max are pushed apart
RELAX_MAX_STEP = 0.3                  # a dot moves at most this fraction of its d_max per pass
FOLD_COS = 0.0                        # dots whose normals differ by more than 90 degrees never block each other
MAX_DOTS = 2_000_000

# --- safety: the spacing floor and the quality bars -----------------------------------------------------------
#: No two dots of a plan are ever closer than their pair's floor: SPACING_FLOOR_FRACTION of the local target spacing
#: (d_max of the local final density, the smaller of the two dots' spacings) and never under SPACING_FLOOR_MIN_MM.
#: DOMAIN.md: a healed dot reads as a soft spot 0.3-0.5 mm wide and no source gives an overlap threshold; two
#: punctures closer than about 0.4 mm heal as one blotch, and the engine's own bar (union rho 0.65) sits well above
#: half the spacing, so a plan under the floor is a defect, never a trade-off. Each session alone is held to the same
#: fraction of its own spacing (the union's d_max over sqrt of the session's share of the final density).
SPACING_FLOOR_FRACTION = 0.5
#: the local target spacing is taken at no less than this share of the plan's highest density: a margin feathered to
#: zero thins out to scattered dots spaced as at a tenth of the peak, not at a spacing that grows without bound
SPACING_DENSITY_FLOOR_SHARE = 0.1
SPACING_FLOOR_MIN_MM = 0.4
#: quality bars of the engine (rho = closest pair / local d_max): below these a plan prints a warning and is flagged
#: in summary.json (plans of QUALITY_BAR_MIN_DOTS dots or more; a few dozen dots have no meaningful rho)
QUALITY_BAR_UNION_RHO = 0.65
QUALITY_BAR_SESSION_RHO = 0.6
QUALITY_BAR_MIN_DOTS = 200

# --- verification ------------------------------------------------------------------------------------------------
PLUNGE_TOLERANCE_MM = 0.2             # a plunge tip must be this close to skin point + depth along the normal
#: slack of every other millimetre check of the planner's safety checks and the verifier (travel clearance, depth
#: bounds, retract to the approach point): the written coordinates are rounded to 1e-4 mm (ROUND_MM) and the distance
#: queries run in float32, so a move exactly at a limit may read up to about 1e-4 mm past it
GEOMETRY_TOLERANCE_MM = 1e-3
#: the verifier: the needle axis the A B words (or a 3-axis comment) state may differ this much from the plunge line
AXIS_TOLERANCE_DEG = 0.5
ROUND_MM = 4                          # decimals written for coordinates (0.1 micrometre)
ROUND_DEG = 4

# --- feedback ---------------------------------------------------------------------------------------------------
PROGRESS_AFTER_S = 2.0                # a stage that took longer prints its time when it ends

# --- quality metrics ---------------------------------------------------------------------------------------------
COVERAGE_SAMPLES = 200_000

# --- landmarks (issue 11) ----------------------------------------------------------------------------------------
#: the midline profile of a mesh is its exact section by the mirror plane, as points this far apart along it
MIDLINE_SECTION_STEP_MM = 0.25
#: the mirror plane is refined on the dense surface samples: this many probe points, at most this many point-to-plane
#: ICP steps, tangent planes fitted to this many neighbours
MIRROR_REFINE_POINTS = 6_000
MIRROR_REFINE_ITERATIONS = 10
MIRROR_REFINE_NEIGHBOURS = 12
MIRROR_REFINE_TOL_MM = 0.01           # it stops when no mirrored probe point moves by more than this
#: the nasion lies this share of the way from the hollow's most posterior point (in the head frame) to its deepest
#: point under the chord from the nose tip to the forehead (the textbook nasion; on a flat averaged forehead such as
#: fsaverage's it sits 9 mm lower); the hand references lie between the two: MNE's fsaverage fiducial 4 mm below the
#: first, the Lee Perry-Smith annotation 0.4 mm below the second
NASION_DEEP_SHARE = 0.5
#: on a scan with ears, the preauricular point is the skin sample nearest the spot found in front of the tragus, within
#: this distance (else the smooth fit of the side at the spot)
TRAGUS_SKIN_RADIUS_MM = 6.0
#: a head without ears (no pinna stands out of the side): the preauricular points' midpoint lies these fractions of
#: the radius of the sphere fitted to the cranium above the nasion below the sphere's centre and behind it
#: (fsaverage's proportions, the same at every resolution to 1 mm; the Lee Perry-Smith head, whose ears are found on
#: its ears, has them 0.55 below and 0.19 in front)
EAR_BELOW_CRANIUM_CENTRE = 0.47
EAR_BEHIND_CRANIUM_CENTRE = 0.03
