// Every constant of the rules, with its unit (SPEC §2–§3, rules version 1).
#pragma once

#include <cstdint>

namespace er {

constexpr int32_t kRulesVersion = 1;

// Entity bounds per world (a level exceeding one is rejected at construction).
constexpr int32_t kMaxAgents = 4;
constexpr int32_t kMaxWalls = 64;
constexpr int32_t kMaxDoors = 8;
constexpr int32_t kMaxButtons = 16;
constexpr int32_t kMaxCubes = 16;
constexpr int32_t kMaxRooms = 8;
constexpr int32_t kMaxStatics = kMaxWalls + kMaxDoors;  // walls and doors in resolution order
constexpr int32_t kMaxExits = 16;                       // exit-zone boxes

// Time.
constexpr int32_t kDefaultEpisodeLen = 200;  // steps
constexpr int32_t kSubsteps = 4;
constexpr int32_t kSolverIterations = 2;

// Bodies.
constexpr float kAgentRadius = 1.0f;   // metres
constexpr float kCubeHalf = 1.5f;      // metres, half-extent of a cube's square
constexpr float kButtonHalf = 0.65f;   // metres, half-extent of a button's square
constexpr float kInvMassAgent = 1.0f;  // a pushed cube moves 1/3 of the overlap, the agent 2/3
constexpr float kInvMassCube = 0.5f;

// Default generated level (SPEC §2.1).
constexpr float kRoomLength = 40.0f / 3.0f;  // metres along +y, whatever the room count
constexpr float kArenaHalfWidth = 10.0f;     // play area x in [-10, 10]
constexpr float kWallThickness = 1.0f;
constexpr float kDoorWidth = 20.0f / 3.0f;
constexpr float kExitDepth = 6.0f;   // exit zone depth before the front wall
constexpr float kExitMargin = 1.5f;  // escaped when y >= L + 1.5

// Actions (SPEC §2.2).
constexpr int32_t kNumMoveAmounts = 4;  // STOP, SLOW, MEDIUM, FAST
constexpr int32_t kNumMoveAngles = 8;   // k * pi/4 clockwise from forward
constexpr int32_t kNumRotates = 5;      // FAST_LEFT ... FAST_RIGHT
constexpr int32_t kActionDims = 3;
constexpr float kMaxMovePerStep = 1.0f;  // metres, move_amount FAST

// Observations (SPEC §3).
constexpr int32_t kLidarRays = 30;
constexpr float kLidarRange = 40.0f;  // metres
constexpr int32_t kEntitySlots = 6;
constexpr int32_t kObsSelf = 0;       // [0:5]
constexpr int32_t kObsSteps = 5;      // [5]
constexpr int32_t kObsDoor = 6;       // [6:9]
constexpr int32_t kObsEntities = 9;   // [9:27]
constexpr int32_t kObsLidar = 27;     // [27:87]
constexpr int32_t kObsPartners = 87;  // [87:]
constexpr int32_t kObsPartnerDim = 3;
constexpr int32_t kEntityTypeCount = 6;  // types are reported as type / 6

constexpr int32_t obs_dim(int32_t num_agents) { return kObsPartners + kObsPartnerDim * (num_agents - 1); }

static_assert(kObsDoor + 3 == kObsEntities, "door slot is 3 floats");
static_assert(kObsEntities + 3 * kEntitySlots == kObsLidar, "6 entity slots of 3 floats");
static_assert(kObsLidar + 2 * kLidarRays == kObsPartners, "30 lidar rays of 2 floats");
static_assert(obs_dim(1) == 87 && obs_dim(4) == 96, "D = 87 + 3 (A - 1)");

enum EntityType : int32_t {
    kTypeNone = 0,
    kTypeButton = 1,
    kTypeCube = 2,
    kTypeWall = 3,
    kTypeAgent = 4,
    kTypeDoor = 5
};

enum RoomType : int32_t { kRoomButton = 0, kRoomDoubleButton = 1, kRoomCubeBlocking = 2, kRoomCubeButton = 3 };
constexpr int32_t kNumRoomTypes = 4;

// Values as stored in replay files.
enum AutoresetMode : int32_t { kNextStep = 0, kSameStep = 1, kDisabled = 2 };

enum TerminationReason : int32_t { kRunning = -1, kTimeLimit = 0, kEscaped = 1 };

// Per-world lifecycle between steps.
enum WorldStatus : uint8_t {
    kStatusRunning = 0,
    kStatusPendingReset = 1,  // NEXT_STEP: the episode ended last step; the next step resets
    kStatusFrozen = 2,        // DISABLED: the episode ended; frozen until the user resets it
};

// The reward of SPEC §2.5; every field overridable from Python.
struct RewardConfig {
    float progress_scale = 0.05f;  // per metre of new max_y
    float slack_penalty = 0.005f;  // subtracted on steps without progress
    float group_bonus = 1.25f;     // multiplier of positive progress when the team is together
    float group_radius = 2.0f;     // metres between max_y values to count as together
    float escape_bonus = 1.0f;     // once, on the step an agent reaches exit_y
};

}  // namespace er
