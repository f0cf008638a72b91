"""Every named tunable of scalp3d in one place: its default, its unit (in its name) and its allowed range.

Defaults come from the published figures of scalp micropigmentation and hair biology (the source beside each: papers,
physicians' summaries, practitioners' consistent claims), from measurements on the sample heads and the benchmark cap
(noted beside each), and from the studies and papers cited beside them. Algorithms import these names; no bare literal
tolerances live in the algorithms (numerical guards such as 1e-12 against a division by zero excepted). The plan file
(see :mod:`scalp3d.design`) overrides the plan-level ones within these ranges.

The look of the pictures (skin, pigments, halo, fresh, fringe, texture, framing) is here too. Not here: the on-screen
layout of the 3D view's controls and the take-home page (pixel sizes, fonts, UI colours, JPEG quality), which sit at the
top of ``viewers/interactive.py`` and ``viewers/share.py``: they change how a control is drawn, never a result.
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
#: Loop subdivisions applied to the embedded sample head (2,033 vertices -> about 130k; mean edge about 1.2 mm)
SAMPLE_HEAD_SUBDIVISIONS = 3
#: Poisson reconstruction depth for point clouds
POISSON_DEPTH_RANGE = (7, 10)         # octree depth chosen so the finest cell is about the point spacing
#: point clouds: thinned to this spacing before meshing (0.2 mm noise averages out; Poisson stays fast), outliers
#: are points whose mean distance to their OUTLIER_NEIGHBOURS nearest is over OUTLIER_STD_RATIO std above the mean
CLOUD_SPACING_MM = 1.2
OUTLIER_NEIGHBOURS = 20
OUTLIER_STD_RATIO = 2.5
#: normals are oriented consistently on a coarse copy (this spacing) and carried to every point
ORIENT_SPACING_MM = 4.0
#: a reconstructed vertex farther than this many point spacings from every scanned point is not measured
SUPPORT_SPACINGS = 3.0
SUPPORT_MIN_SPACING_MM = 0.5         # the point spacing is taken at no less than this for the support test
#: the input point spacing is estimated on at most this many points (a random share of a larger cloud)
SPACING_ESTIMATE_POINTS = 300_000
#: normals estimated from this many neighbours; oriented on the coarse copy from this many neighbours, consistently
#: over a graph of this many (when it has at least ORIENT_MIN_POINTS points)
NORMAL_NEIGHBOURS = 20
ORIENT_NORMAL_NEIGHBOURS = 15
ORIENT_GRAPH_NEIGHBOURS = 10
ORIENT_MIN_POINTS = 20
#: repair: non-manifold edges are resolved in at most this many passes; pinholes (border loops of at most this many
#: edges) left where non-manifold bits were cut out are closed
MANIFOLD_REPAIR_PASSES = 5
PINHOLE_MAX_EDGES = 8
#: holes up to this area are filled smoothly and marked "filled"; larger gaps are left open and reported
HOLE_MAX_AREA_CM2 = 80.0
#: isotropic remeshing: target edge (mm), iterations; scans denser than DECIMATE_ABOVE_FACES are decimated first
REMESH_EDGE_MM = 1.0
REMESH_EDGE_RANGE_MM = (0.2, 5.0)     # the target edges the CLI accepts (--edge-mm)
REMESH_ITERATIONS = 3
DECIMATE_ABOVE_FACES = 1_500_000
#: the neck cut: the narrowest horizontal section between these heights below the tragi (head frame, mm)
NECK_SEARCH_MM = (40.0, 220.0)
HEAD_MIN_THICKNESS_RATIO = 0.3        # parts thinner than this (smallest over largest extent) count as flat background
NECK_SAMPLES = 200_000                # surface points the sections are measured on
NECK_CYLINDER_FRAC = 0.55            # sections are measured within this fraction of the tragi's distance of the axis
NECK_MARGIN_MM = -15.0                # the cut is this far below (negative: above) the lowest full ring (the neck)
#: neck sections: every NECK_STEP_MM down, the surface points within NECK_SECTION_HALF_MM of the height (at least
#: NECK_SECTION_MIN_POINTS, else the scan ends there); a section is a full ring while its points fill at least
#: NECK_RING_MIN_SECTORS of the NECK_SECTOR_DEG sectors round the axis (27 of 36: three quarters of the way round);
#: its width is the mean of the two horizontal extents between these percentiles (robust to stray points); a
#: narrowest ring within NECK_END_MARGIN_MM of the search's lower end is the torso's edge, not a neck
NECK_STEP_MM = 4.0
NECK_SECTION_HALF_MM = 2.0
NECK_SECTION_MIN_POINTS = 12
NECK_SECTOR_DEG = 10.0
NECK_RING_MIN_SECTORS = 27
NECK_WIDTH_PERCENTILES = (2, 98)
NECK_END_MARGIN_MM = 8.0
#: input points used for the deviation figures of the report
DEVIATION_SAMPLES = 200_000
#: input points count for the deviation only within the head's box plus this margin (background and stray pieces
#: were cut away on purpose)
DEVIATION_BOX_MARGIN_MM = 5.0
#: a scan with fewer points than this cannot hold a head
MIN_SCAN_POINTS = 100

# --- skin distances (heat method) ---------------------------------------------------------------------------------
#: above this many triangles the heat method runs on a copy simplified by vertex clustering in cells of
#: GEODESIC_VOXEL_MM (about twice the 1 mm remeshing edge). Measured along the forehead's midline by an independent
#: arc length (tests/test_hairline.py): 2.5 mm cells put the real head's hairline 3.8 mm above its plan (65 mm), 2 mm
#: cells 1.4 mm, the full mesh 2.7 mm; the sample head's edge is 2 mm high at 1.5-2.5 mm cells
GEODESIC_MAX_FACES = 40_000
#: the geodesic solvers kept for the meshes last used (a few MB each at GEODESIC_MAX_FACES faces)
GEODESIC_CACHE = 2
#: ... and each keeps its last few distance fields, by their sources (a design change solves only the changed ones)
GEODESIC_DISTANCE_CACHE = 12
GEODESIC_VOXEL_MM = 2.0
#: a distance from several sources (a scar's line, a hairline's edge) is levelled at each vertex by the heat method's
#: offsets at this many nearest sources (scalp3d.geodesic.GeodesicSolver._source_offsets)
GEODESIC_OFFSET_SOURCES = 4

# --- design (plan defaults, published figures) -------------------------------------------------------------------
CORE_DENSITY_PER_CM2 = 100.0          # about 1 mm spacing, natural FU density 80-100/cm2 (J Soc Cosmet Chem 28(5))
HAIRLINE_DENSITY_PER_CM2 = 40.0       # natural hairline 38-78, 51 typical (Keene's data); the sparse edge of the band
DENSITY_MAX_PER_CM2 = 160.0           # above this dots merge ("helmet look")
#: a density given to the engine (CLI, place_dots) above this is refused: ten times the merging limit, so a unit
#: mistake (dots per mm2, per m2) fails with a message rather than a plan
DENSITY_INPUT_MAX_PER_CM2 = DENSITY_MAX_PER_CM2 * 10
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

# --- design: plan input checks -----------------------------------------------------------------------------------
#: the largest coordinate (mm) a point in a plan or a landmarks file may have: a metre from the scan's origin is
#: already off any head
MAX_COORD_MM = 1e4
#: the longest text (characters) a plan's free-text field and a file name in it may hold (one G-code comment line)
PLAN_TEXT_MAX_CHARS = 200
PLAN_PATH_MAX_CHARS = 1000
#: a point of a plan (drawn hairline, scar, reserved centre) farther than this from the skin is a wrong unit or axis
PLAN_POINT_MAX_OFF_SKIN_MM = 10.0
#: a hairline polyline file may hold this many bytes per point (of HAIRLINE_FILE_MAX_POINTS): a generous text line
HAIRLINE_FILE_BYTES_PER_POINT = 50
#: mask PLY files: a vertex painted red (8-bit red at least MASK_RED_MIN, green and blue at most MASK_GREEN_BLUE_MAX)
#: is marked; the mask's resolution is its median edge (at least MASK_MIN_TOL_MM), MASK_POINTS_TOL_MM for a mask
#: without faces; a mask whose marked vertices lie farther than MASK_MAX_OFF_SKIN_MM (median) from the head is refused
MASK_RED_MIN = 200
MASK_GREEN_BLUE_MAX = 80
MASK_POINTS_TOL_MM = 1.0
MASK_MIN_TOL_MM = 0.5
MASK_MAX_OFF_SKIN_MM = 2.0
#: a reserved region given as a mask keeps this radius around every marked vertex unless the plan gives one
RESERVED_MASK_RADIUS_MM = 0.5
#: a scar drawn as a polyline is taken as points this far apart along it (finer than the 1 mm surface)
SCAR_POLYLINE_STEP_MM = 0.5

# --- design: the treated area's edge and the zones ---------------------------------------------------------------
#: the midline of the forehead: vertices within this distance of the mirror plane (about three 1 mm edges)
HAIRLINE_MIDLINE_BAND_MM = 3.0
#: the forehead's profile at the frontotemporal points: vertices within this half width of the vertical plane, from
#: this far below to this far above the mid-frontal point, at least this many of them
FOREHEAD_COLUMN_HALF_MM = 2.5
FOREHEAD_COLUMN_SPAN_MM = (30.0, 80.0)
FOREHEAD_COLUMN_MIN_POINTS = 10
#: the temple point's skin: vertices within this half width (ahead and above) of the planned spot
TEMPLE_SEARCH_HALF_MM = 2.5
#: the frontotemporal point lies at least this azimuth behind the front and in front of the temple point, and the
#: temple point at least this far in front of the ear (azimuth 90 degrees)
HAIRLINE_AZIMUTH_MARGIN_DEG = 3.0
#: a drawn hairline replaces the control points within its azimuth range widened by this margin
POLYLINE_CONTROL_MARGIN_DEG = 10.0
#: the edge's irregularity (Shapiro & Shapiro: never a ruler line): slow waves of these orders (range arguments:
#: 2 to 5 per turn, symmetric), small steps of these orders (18 to 45 per turn, every third), none at the mid-frontal
#: point, fading in over this azimuth (Gaussian width)
EDGE_NOISE_MACRO_WAVES = (2, 6)
EDGE_NOISE_MICRO_WAVES = (18, 48, 3)
EDGE_NOISE_FRONT_TAPER_DEG = 12.0
#: mode 'density' and 'whole-scalp': the feathered edge starts at this share of the core density
DENSITY_MODE_EDGE_SHARE = 0.5
#: zones: 'mid' and 'crown' above this fraction of the head's top height (head frame, from the tragi's level);
#: 'front' and 'back' where the cosine of the azimuth is above this (within 60 degrees of the front or the back)
ZONE_TOP_FRACTION = 0.75
ZONE_FRONT_BACK_COS = 0.5

# --- design: existing hair from colour (more) --------------------------------------------------------------------
#: at least this many forehead skin samples; a skin reference darker than this luminance (0-1) cannot tell hair
HAIR_SKIN_MIN_SAMPLES = 10
HAIR_SKIN_MIN_LUMINANCE = 0.05

# --- needle (plan defaults) --------------------------------------------------------------------------------------
NEEDLE = "0603-1RL"                   # 0.20 mm single point
NEEDLE_DIAMETER_MM = {"0603-1RL": 0.20, "0603-3RL": 0.20, "0803-1RL": 0.25, "0803-3RL": 0.25, "0501-1RL": 0.18}
DOT_SIZE_RANGE_MM = (0.05, 0.5)       # healed dots 0.1-0.25 mm wide (practitioners' figures)
DEPTH_MM = 0.6                        # upper papillary dermis; clinics quote 0.25-2 mm
DEPTH_RANGE_MM = (0.2, 2.0)
STANDOFF_MM = 3.0                     # approach point above the skin, along the normal
STANDOFF_RANGE_MM = (1.0, 20.0)
CLEARANCE_MM = 1.5                    # travel never comes closer than this to the skin
CLEARANCE_RANGE_MM = (0.5, 20.0)
SAFE_SHELL_MARGIN_MM = 15.0           # long jumps go out to a shell this far beyond the head's bounding sphere
SHELL_LIFT_MM = 20.0                  # a long jump first lifts this far along the normal from the approach point
SHELL_ARC_STEP_DEG = 10.0             # and follows the shell's great circle in steps of at most this angle
#: the tour of a session: nearest-neighbour start on a grid of this cell (mm; then twice the median nearest spacing),
#: improved by 2-opt and Or-opt over this many nearest neighbours, at most this many moves per dot
TOUR_CELL_MM = 2.0
TOUR_NEIGHBOURS = 8
TOUR_MOVES_PER_DOT = 50
PLUNGE_FEED_MM_PER_MIN = 1200.0
TRAVEL_FEED_MM_PER_MIN = 6000.0
DWELL_S = 0.05
FEED_RANGE_MM_PER_MIN = (10.0, 60000.0)
DWELL_RANGE_S = (0.0, 5.0)
WORKSPACE_HALF_MM = 1000.0            # default machine: a cube of +-1 m around the scan's origin
TILT_LIMIT_DEG = 5.0                  # needle axis vs skin normal
#: a machine profile's registration whose points disagree with a rigid motion by more than this (RMS, mm) is refused
REGISTRATION_RMS_LIMIT_MM = 1.0

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
MAX_SESSIONS = 8                      # a plan has 1 to this many sessions
#: the relaxation's neighbour lists reach this far (x the median d_max) beyond each pair's target
LIST_REACH = 1.0

# --- placement: joint multi-class relaxation (issue 3) -----------------------------------------------------------
#: Defaults from the multi-class study of issue 3 (method B2, started from the subsets result). Targets are in units
#: of the local union d_max: (same session x own d_max, any other pair, sessions 1-2 x d_max of their union, floor of
#: sessions 1-2)
JOINT_SOFT = (0.85, 1.00, 0.97, 1.00)
JOINT_HARD = (0.75, 0.82, 0.75, 0.82)
JOINT_SOFT_SWEEPS = 30      # soft (over-compressed) sweeps from the subsets result (the study: 750 from random)
JOINT_SOFT_OMEGA = 0.5
JOINT_HARD_SWEEPS = 300     # at most this many projection sweeps onto the hard targets
JOINT_HARD_OMEGA = 1.7      # over-relaxed projection: 150 sweeps at 0.9, 72 at 1.5, 49 at 1.7 (60k)
JOINT_HARD_TOL = 1e-2       # projection stops when the largest relative violation is below this (60k: ~50 sweeps)
JOINT_HARD_PATIENCE = 20    # every this many projection sweeps, the hard targets are lowered by JOINT_HARD_BACKOFF
JOINT_HARD_STALL = 0.85     # if the largest violation did not fall below this fraction of its last check (a stall:
JOINT_HARD_BACKOFF = 0.97   # converging runs fall ~0.6-0.8x per 20 sweeps, infeasible ones oscillate at ~1x)
JOINT_MAX_STEP = 0.3        # a dot moves at most this fraction of its d_max per sweep
JOINT_HARD_HELD_REPEATS = 2  # the largest violation this many sweeps running the same as one of the last
JOINT_HARD_CYCLE = 4         # this many (a held pair, or one swinging between a few states): lower the targets now
JOINT_HARD_SAME = 1e-3       # "the same": within this share of it (a swinging pair drifts by ~2e-4 a swing)

#: a new dot placed among fixed ones (dots already on the skin) is dropped when it lies within this many times its
#: pair's spacing floor of a fixed dot (the later check measures the spacing from the density a little differently)
FIXED_FLOOR_MARGIN = 1.1
#: one session placed among fixed dots starts from the candidates farther than this many union d_max from every fixed
#: dot (the holes between them), picked at the session's own spacing
HOLE_CLEARANCE = 0.6
#: candidates per new dot in that case: about a tenth of the skin is that far from dots spread at 4/5 of the density
HOLE_CANDIDATES_PER_DOT = 40
#: a local re-placement (issue 15) places again every dot within this of a vertex whose density changed: the seam
#: where new dots meet the kept ones (a 5 mm hairline move on the sample head: 3 mm keeps 70 % of the dots, and the
#: union and every session alone come out as even as a fresh plan's)
LOCAL_SEAM_MM = 3.0
#: ... and only the kept dots within this beyond the seam push the new ones (the farther ones cannot reach them: the
#: joint relaxation's pairs are within a few spacings, at most about 2.5 mm each at a hairline's density)
LOCAL_FIXED_REACH_MM = 8.0
#: ... and its last pass drops a new dot closer to its nearest dot than these shares of the pair's local d_max (all
#: dots, each session alone: a fresh plan of the sample head reaches 0.81 and 0.71-0.75), for at most so many rounds
LOCAL_POLISH = (0.80, 0.72)
LOCAL_POLISH_ROUNDS = 4
#: ... below LOCAL_POLISH_STEP x the new dots' own 5th percentile when lower (a projection that lowered its targets
#: leaves the bulk just under LOCAL_POLISH: only its stalled pairs go), with at least LOCAL_POLISH_MIN_DOTS new dots
LOCAL_POLISH_STEP = 0.97
LOCAL_POLISH_MIN_DOTS = 100
#: live design (scalp3d.live): a change whose local re-placement would keep fewer than this share of the dots places
#: them all again (as fresh a plan as `scalp3d plan` makes, for about the same time)
LIVE_FULL_BELOW_KEPT = 0.4
#: ... and re-places the dots only where the density differs from the one they were placed for by more than this
#: share (3 %: 1.5 % of spacing, within the scatter of a blue-noise plan's realised density per zone; a 5 mm hairline
#: move on the sample head changes the density of 33 % of the treated skin, 26 % of it by more than 3 %)
LIVE_DENSITY_TOL = 0.03
#: the seed of a change's local re-placement: the plan's seed plus this times the change's step
LIVE_STEP_SEED = 7919
#: a dots.csv opened for live design must lie on the head.ply beside it within this (mm; it is rounded to 0.001 mm)
LIVE_DOT_ON_HEAD_MM = 0.05
#: a disc painted reserved in the live design: its radius (mm)
LIVE_PAINT_RADIUS_MM = 5.0
#: a hairline handle sits on the skin within this of its control point's height (mm, head frame)
LIVE_HANDLE_BAND_MM = 1.5
#: a point given to move a handle or paint a region lies within this of the skin (mm): a handle let go a little off
#: the surface is taken to the nearest skin, but a point farther off is a mistake (metres given for mm, the wrong axes:
#: such a point lies near the scan's origin, which was 21 mm from the real test head's skin and 80 mm from the sample
#: head's; the nearest skin to it is no place the practitioner meant)
LIVE_POINT_REACH_MM = 15.0

# --- safety: the spacing floor and the quality bars -----------------------------------------------------------
#: No two dots of a plan are ever closer than their pair's floor: SPACING_FLOOR_FRACTION of the local target spacing
#: (d_max of the local final density, the smaller of the two dots' spacings) and never under SPACING_FLOOR_MIN_MM.
#: Practitioners estimate a healed dot reads as a soft spot 0.3-0.5 mm wide; no source gives an overlap threshold; two
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
#: a plan's dots (a density field, no fixed dots) never pair closer than this share of their spacing: the dot of the
#: later session goes (a dot or two pinned in a tip of treated skin too narrow for its density), just above the
#: union's bar so that the summary never flags them; unless more than CROWDED_MAX_SHARE of the dots would go
CROWDED_RHO = QUALITY_BAR_UNION_RHO + 0.005
CROWDED_MAX_SHARE = 0.001
#: a touch-up placed among dots already on the skin (which cannot move) is held to this bar, for the union, the
#: touch-up alone and each new dot to its nearest old one: dots spread at rho ~0.75 leave holes about 0.6 of the new
#: union's d_max deep at a quarter more density, so the union's 0.65 is out of reach (measured on the sample head at
#: TOUCH_UP_FRACTION: union 0.58, touch-up alone 0.59)
QUALITY_BAR_TOUCH_UP_RHO = 0.55

# --- verification ------------------------------------------------------------------------------------------------
PLUNGE_TOLERANCE_MM = 0.2             # a plunge tip must be this close to skin point + depth along the normal
#: slack of every other millimetre check of the planner's safety checks and the verifier (travel clearance, depth
#: bounds, retract to the approach point): the written coordinates are rounded to 1e-4 mm (ROUND_MM) and the distance
#: queries run in float32, so a move exactly at a limit may read up to about 1e-4 mm past it
GEOMETRY_TOLERANCE_MM = 1e-3
#: a travel segment is proven clear without sampling its inside when its end distances leave this much (mm) above
#: the clearance (the distance to the skin changes no faster than the point moves; float32 queries near a head
#: 100 mm from the origin err by about 1e-5 mm)
LIPSCHITZ_MARGIN_MM = 1e-3
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

# --- landmarks: estimation (issue 11) ----------------------------------------------------------------------------
#: Defaults measured on the sample heads (fsaverage, the Lee Perry-Smith head) and on the landmark figures over 50
#: reordered poses (README); anatomical sizes are typical adult figures.
#: even points used to orient a head (scale-free steps), and to place the landmarks (mm steps)
ORIENT_POINTS = 12_000
LANDMARK_POINTS = 40_000
#: mirror plane search: candidate normals on a hemisphere, probe points, ICP iterations, share of pairs kept
MIRROR_CANDIDATES = 200
MIRROR_PROBE_POINTS = 1_500
MIRROR_ICP_ITERATIONS = 12
MIRROR_KEEP_FRACTION = 0.7
#: scale-free lengths, as fractions of the rms radius of the points about their centre
MIDLINE_BAND_FRAC = 0.03        # half width of the midline band
NOSE_CAP_DEPTH_FRAC = 0.05      # depth of the cap whose width tells a nose tip from a skull
NOSE_CAP_MAX_WIDTH_FRAC = 0.45  # a nose tip's cap is narrower than this (a dome's is about 0.6-0.9)
DORSUM_STEP_FRAC = (0.08, 0.12, 0.16)  # heights above/below the tip where the profile's recession is compared
DORSUM_VOTE_TILTS_DEG = (-20.0, -10.0, 0.0, 10.0, 20.0)
CRANIUM_HEIGHTS_FRAC = (0.3, 0.45)     # section heights above and below the nose tip (fractions of the rms radius)
TIP_CAP_FRAC = 0.04                    # the nose tip is the centre of the cap this deep (fraction of the rms radius)
CRANIUM_RATIO = 1.1                    # sections above at least this much larger (or smaller): up is decided
#: the nasal dorsum (nose tip to nasion) leans forward from the vertical by about this much
DORSUM_TILT_DEG = 30.0
#: ear search around the prediction (mm), the protrusion (mm) out of a smooth side fit that marks a pinna, and the
#: least pinna area (mm2) that counts as an ear
EAR_SEARCH_HALF_MM = 45.0
PINNA_PROTRUSION_MM = 6.0
CONCHA_DEPTH_MM = 4.0                 # the concha (the hollow behind the tragus) lies this deep under the side fit
TRAGUS_SEARCH_MM = 20.0               # the concha is looked for up to this far in front of the pinna's front edge
PINNA_MIN_AREA_MM2 = 300.0
#: the tragus sits at this fraction of the pinna's height, from its lowest point (the ear canal is in the lower half)
TRAGUS_HEIGHT_FRACTION = 0.45
#: the preauricular point lies this far in front of the front edge of the concha (the tragus's thickness)
TRAGUS_WIDTH_MM = 3.0
#: the glabella is the most prominent midline point this high above the nasion
GLABELLA_SEARCH_MM = (5.0, 25.0)
#: the nasion's hollow: profile bins within this fraction of the scale (about 1 mm) of its deepest or most posterior
#: point make its flat bottom, whose weighted middle is the nasion
NASION_FLAT_FRAC = 0.01
#: the rms radius of a head's surface about its centre (fsaverage: 110 mm): the scale of the mm steps of the nasion
HEAD_RMS_RADIUS_MM = 110.0
#: the same for the frame's own nasion (the deepest point under the hull; wider bands pull sparse profiles off it)
NASION_DEEP_FRAC = 0.003
#: a point set (no faces) is taken to hold about this much surface per point (mm2), for the pinna's area
POINT_SET_AREA_PER_POINT_MM2 = 4.0
#: a point set's midline profile: the points within this distance of the mirror plane; at least this many of them
MIDLINE_BAND_MM = 3.0
MIDLINE_MIN_POINTS = 100
#: the nose tip again on the dense profile: the centre of the cap this deep among the profile points this near it
NOSE_TIP_BAND_MM = 15.0
NOSE_TIP_CAP_MM = 2.0
#: head length at the nasion's height (profile points within this band of it); a shorter head lacks its back
HEAD_LENGTH_BAND_MM = 15.0
HEAD_LENGTH_MIN_MM = 120.0
#: the glabella lies no farther behind the nasion than this
GLABELLA_MAX_BEHIND_MM = 30.0
#: the inion: the rearmost midline point within this band of the preauricular points' height
INION_BAND_MM = 5.0
#: plausibility of estimated landmarks: the nasion lies this far in front of the preauricular points' midpoint
NASION_AHEAD_OF_EARS_RANGE_MM = (50.0, 150.0)
#: the ear search: points at least this far to the side of the midline, and at least this many of them
EAR_SEARCH_LATERAL_MIN_MM = 20.0
EAR_SEARCH_MIN_POINTS = 50
#: the smooth fit of the side of the head drops points off it by more than this many robust spreads (at least this
#: many mm); the skin near the tragus is within SIDE_FIT_SKIN_MM of the fit
SIDE_FIT_OUTLIER_SPREADS = 2.5
SIDE_FIT_OUTLIER_MIN_MM = 2.0
SIDE_FIT_SKIN_MM = 2.0
#: the pinna's front edge is measured on the rows within this height of the tragus
TRAGUS_ROW_HALF_MM = 15.0
#: the concha is looked for within this height of the tragus and from this far behind the pinna's front edge
CONCHA_HALF_HEIGHT_MM = 6.0
CONCHA_BEHIND_MM = 5.0
#: on a head without ears, the skin samples within this square half width of the predicted point
EARLESS_SKIN_HALF_MM = 4.0

# --- landmarks: given or derived ---------------------------------------------------------------------------------
#: a given landmark farther than this from the head surface is a wrong unit or axis
LANDMARK_MAX_OFF_SURFACE_MM = 25.0
#: a derived glabella: the most prominent profile point within this band of GLABELLA_ABOVE_NASION_MM above the nasion
GLABELLA_PROFILE_BAND_MM = 2.0
#: a derived inion: the rearmost profile point within this band of the preauricular points' height
INION_PROFILE_BAND_MM = 10.0

# --- preview: the healed look (issue 13) -------------------------------------------------------------------------
#: the dot texture: texel size on the skin (mm; DOMAIN: a healed dot is seen 0.3-0.5 mm across, so a few texels
#: per dot) and the largest image side (texels grow to fit; 8192 fits llvmpipe's and most GPUs' limits)
PREVIEW_TEXEL_MM = 0.1
#: the fringe's stubble is placed around the treated dots within this many core spacings of the fringe, held fixed
#: (no bare seam between the two)
STUBBLE_SEAM_SPACINGS = 3.0
PREVIEW_TEXTURE_MAX_PX = 8192
#: the atlas is projected from this far above the midpoint of the ears along the head's up axis (mm: inside the skull,
#: so the scalp is star-shaped from it); charts have this gutter (texels); a triangle lying more than
#: ATLAS_OCCLUSION_MM farther from the centre than the closest surface in its 1/ATLAS_DIRECTION_BINS-of-pi direction
#: bin is hidden from it (an ear's rim, the nose) and gets a white texel
ATLAS_CENTRE_UP_MM = 25.0
ATLAS_GUTTER_TEXELS = 8
ATLAS_OCCLUSION_MM = 6.0
ATLAS_DIRECTION_BINS = 180
#: texels only for the scalp and around it (head frame, mm; z = 0 through the ears and the nasion): above
#: ATLAS_Z_MIN_MM (the nape's hairline lies about 45 mm below), and in front of ATLAS_FACE_AHEAD_MM only above
#: ATLAS_FACE_BELOW_MM (the face below the brow)
ATLAS_Z_MIN_MM = -70.0
ATLAS_FACE_AHEAD_MM = 40.0
ATLAS_FACE_BELOW_MM = 5.0
#: skin tones when the scan has no colour (or the plan asks for one): sRGB of bare scalp skin, Fitzpatrick types I-VI
#: (typical constitutive skin colours, lightest to darkest; a practitioner picks the closest or uses the scan's own)
SKIN_PRESETS = {"fitzpatrick-1": (241, 210, 190), "fitzpatrick-2": (228, 188, 160), "fitzpatrick-3": (205, 160, 125),
                "fitzpatrick-4": (170, 120, 85), "fitzpatrick-5": (120, 80, 55), "fitzpatrick-6": (72, 48, 36)}
PREVIEW_SKIN = "fitzpatrick-2"
#: pigment shades as seen through the skin where a dot fully covers it: sRGB of the filter the pigment makes (the skin's
#: colour times this). SMP pigment is diluted carbon black; healed it reads a neutral to slightly cool grey. A plan
#: may set its own under [preview.pigments] (a shade not listed falls back to PIGMENT_FALLBACK)
PIGMENTS = {"light": "#6c6e72", "medium": "#45474c", "dark": "#26272b"}
PIGMENT_FALLBACK = "#45474c"
#: a healed dot: opaque over the plan's dot_size_mm, then a Gaussian halo of this width (mm) as the pigment is seen
#: through the upper skin; 0.12 mm makes a 0.20 mm dot read about 0.48 mm across at half strength (DOMAIN: 0.3-0.5 mm),
#: and 100 dots/cm2 of 'dark' darken light skin by about a sixth (DOMAIN's estimate from photos: a quarter to a third)
HEALED_HALO_MM = 0.12
#: a fresh dot (the first days): this much wider, a crisper halo, a darker filter (transmittance times FRESH_DARKEN),
#: on reddened skin (the skin's colour times FRESH_SKIN_TINT where dots are, fading over FRESH_REDNESS_MM around them)
FRESH_SIZE_GAIN = 1.8
FRESH_HALO_MM = 0.06
FRESH_DARKEN = 0.6
FRESH_SKIN_TINT = (1.0, 0.80, 0.80)
FRESH_REDNESS_MM = 4.0
#: the hair-bearing fringe outside the treated area, drawn as shaved stubble: the natural hairline runs this far above
#: the tragi at the sides and this far below them at the nape (the plan's frontal hairline kept); stubble is drawn at
#: the plan's core density with the last session's shade and the plan's needle size
FRINGE_SIDE_ABOVE_TRAGUS_MM = 20.0
FRINGE_NAPE_BELOW_TRAGUS_MM = 45.0
PREVIEW_FRINGES = ("stubble", "scan", "bare")
#: the drawn head is cut by a plane this far above the neck cut's ragged edge (mm), so its bottom is a clean line
DISPLAY_CUT_ABOVE_MM = 1.0
#: the pictures: background (sRGB), light (ambient share, specular), vertical view angle (degrees), the framed part of
#: the head (above this height in the head frame, mm: the nape's hairline and the ears) with this margin around it
PICTURE_BACKGROUND = "#e9ebee"
PICTURE_AMBIENT = 0.25
PICTURE_SPECULAR = 0.08
PICTURE_VIEW_ANGLE_DEG = 25.0
PICTURE_HEAD_BOTTOM_MM = -60.0
PICTURE_MARGIN = 0.06
#: close-ups: the camera's view angle (degrees: a long lens, little perspective)
CLOSEUP_VIEW_ANGLE_DEG = 10.0
PICTURE_TEXT = "#1a1a1e"
#: a tile of the standard pictures (pixels); close-ups: this wide on the skin (mm) with a scale bar of CLOSEUP_SCALE_MM,
#: and only where a zone has at least CLOSEUP_MIN_DOTS dots
PICTURE_TILE_PX = (640, 640)
CLOSEUP_WIDTH_MM = 40.0
CLOSEUP_SCALE_MM = 5.0
CLOSEUP_MIN_DOTS = 20
#: the turntable: frames per turn, size (pixels), frames per second, and the camera raised by this share of its distance
TURNTABLE_FRAMES = 24
TURNTABLE_PX = (400, 400)
TURNTABLE_FPS = 8
TURNTABLE_RISE = 0.35
#: a tile of the design's maps (pixels)
DESIGN_TILE_PX = (420, 420)
#: a single picture's side must lie within these (pixels)
PICTURE_MIN_PX = 160
PICTURE_MAX_PX = 4096
#: the take-home file's --no-face: triangles more than this far in front of the ears (head frame, mm) and below the
#: glabella's height plus this margin (mm) are dropped
SHARE_FACE_AHEAD_MM = 30.0
SHARE_BROW_MARGIN_MM = 0.0
#: the take-home file's head: this many triangles (its texture carries the dots; at 260,000 triangles the geometry
#: alone took 9.8 MB of the 15 MB budget and left 1024-pixel textures)
SHARE_TRIANGLES = 60_000
#: the take-home file's first view: from the front right, above the head (model-viewer's orbit: azimuth, polar angle)
SHARE_CAMERA_ORBIT = "25deg 50deg auto"
#: drawing normals: the head's averaged over their 1-ring this many times (about sqrt(passes) mm on the 1 mm mesh):
#: the real test head is made of flat facets about 10 mm across that showed as bands
DISPLAY_NORMAL_PASSES = 40

# --- re-scan registration (issue 14) ---
#: the reference's scalp region matched (head frame of its landmarks, mm): higher than this above the ears' level (the
#: nasion's height, z = 0), less the face: more than FACE_AHEAD in front of the ears and below the glabella plus
#: BROW_MARGIN (eyebrows, eyes and nose change with expression and are often missing from a re-scan)
REGISTRATION_SCALP_MIN_Z_MM = 10.0
REGISTRATION_FACE_AHEAD_MM = 30.0
REGISTRATION_BROW_MARGIN_MM = 15.0
#: seeded area-weighted samples of the scalp region: the ICP's source and the points the figures are measured on
REGISTRATION_SCALP_POINTS = 20_000
#: samples of each whole surface for the size check and the centroids of the global search
REGISTRATION_SIZE_POINTS = 20_000
#: today's RMS radius over the reference's: a re-scan of the same head lies inside even without the face, the back or
#: the shoulders (0.68 measured: the real head's re-scan without face and back against the reference with shoulders);
#: a scan in another unit read as mm lies outside (units differ by a factor of 2.54 at least: inches and cm)
REGISTRATION_SIZE_RATIO_RANGE = (0.4, 2.5)
#: today's surface as ICP target: its vertices when it has at least one per this spacing squared of area, else area
#: samples at this spacing (at most TARGET_MAX_POINTS)
REGISTRATION_TARGET_SPACING_MM = 1.0
REGISTRATION_TARGET_MAX_POINTS = 400_000
#: robust point-to-plane ICP stages, coarse to fine: (voxel of the source, largest correspondence distance, width of
#: Tukey's kernel, iterations), mm. The last kernel (1 mm) is 5 times the scanners' 0.2 mm noise and below hair grown
#: 1.5 mm: such a patch weighs nothing in the final fit.
REGISTRATION_ICP_STAGES = ((8.0, 25.0, 12.0, 30), (3.0, 8.0, 4.0, 30), (1.0, 3.0, 1.0, 40))
#: the global search (no landmarks on today's scan, e.g. no face): rotations tried (up to 120: the icosahedral group
#: and the same turned by 36 degrees), each started with the centroids together; a batched point-to-plane ICP with
#: Tukey's kernel on the source at SEARCH_VOXEL (target at twice as fine) runs the schedule's steps (max distance,
#: kernel width (mm), iterations, starts kept after the step, by their share within SEARCH_TOL); the best KEEP go on to
#: the middle ICP stage
REGISTRATION_SEARCH_ROTATIONS = 120
REGISTRATION_SEARCH_VOXEL_MM = 10.0
REGISTRATION_SEARCH_SCHEDULE = ((40.0, 40.0, 10, 30), (20.0, 12.0, 10, 10), (10.0, 6.0, 10, 6))
REGISTRATION_SEARCH_KEEP = 6
REGISTRATION_SEARCH_TOL_MM = 4.0
#: the fine ICP stages also solve a uniform layer (mm) of today's surface outside the reference's (hair grown since the
#: reference scan: without it, hair everywhere slid the fit 3-4 mm along the dome), within this range
REGISTRATION_OFFSET_RANGE_MM = (-0.5, 2.5)
#: a reference scalp point overlaps today's scan when today's surface is within this distance (mm) of it, moved
REGISTRATION_OVERLAP_TOL_MM = 2.5
#: refusals: less than this share of the reference scalp overlapping today's scan, or an RMS residual (mm, on the
#: overlapping part) above this
REGISTRATION_MIN_OVERLAP = 0.6
REGISTRATION_MAX_RMS_MM = 1.0
#: carrying dots: a moved dot farther than this (mm) from today's surface lies where today's scan has no skin: refused
REGISTRATION_CARRY_MAX_MM = 3.0
#: ... or farther than this (mm) with its closest point on the rim of a region missing from today's scan (its mesh's
#: boundary): a dot right at the rim is kept
REGISTRATION_CARRY_RIM_MM = 0.3
#: a re-scan's skin is smoothed by this many Taubin iterations (lambda 0.5, mu -0.53, uniform weights, open borders
#: held) before the dots are carried onto it and programs made on it: with 0.2 mm scanner noise, 10 iterations bring
#: every plunge of the sample and the real head within the verifier's 5 degrees of the smooth normal (trimesh's filter,
#: which lets the borders creep by up to 9 mm, left one plunge of 57,289 at 5.7 degrees); on the noise-free real head
#: they move the scalp by 0.09 mm on average, 0.34 mm at the 99th percentile
RESCAN_SMOOTHING_ITERATIONS = 10
#: ... on a mesh of 1 mm edges; a re-scan finer than that is not remeshed and gets more iterations (twice the square of
#: the edge ratio: Taubin's filter reaches about an edge times the square root of the iterations), at most this many
RESCAN_SMOOTHING_MAX_ITERATIONS = 80
#: a re-scan's largest extent is within this ratio of the case's head's, either way, in the unit given (a re-scan may lack
#: the face or the back; a wrong unit is a factor of 10, 25.4 or 1000)
RESCAN_SIZE_RATIO = 1.6

# --- the patient's case (issue 14) ---
#: how long a change to a case file waits for another process's transaction to end before it is refused (s): short,
#: since a process that keeps a case open for writing is refused at once (its lock file), and a reader's hold lasts
#: milliseconds; a long wait would look like a hang
CASE_BUSY_TIMEOUT_S = 1.0
#: a touch-up in interleave mode adds this fraction of the final density (new dots between the old ones), within
#: TOUCH_UP_FRACTION_RANGE: DOMAIN.md gives no figure; a quarter refreshes a faded result without crowding it (the
#: default core, 100/cm2, goes to 125/cm2, well under DENSITY_MAX_PER_CM2)
TOUCH_UP_FRACTION = 0.25
TOUCH_UP_FRACTION_RANGE = (0.05, 0.6)
#: how a scan's bytes are compressed in the case ("zlib" or "lzma"; both always readable): measured on a 5.2 MB binary
#: PLY, zlib at this level packs it to 44 % in 0.22 s, lzma to 30 % in 2.7 s (twelve times longer for a third less)
CASE_SCAN_CODEC = "zlib"
CASE_ZLIB_LEVEL = 6

#: a zone smaller than this (cm2) in the printed summary shows no realised density (a sliver along another zone's
#: edge holds a few dots: their count over its area means nothing)
ZONE_MIN_REPORTED_CM2 = 1.0
