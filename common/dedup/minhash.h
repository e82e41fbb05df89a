// Near-duplicate answers: MinHash signatures over word shingles, with LSH
// banding to find candidate pairs without comparing every pair.
//
// Text is split into words (runs of ASCII letters and digits, lower-cased;
// bytes >= 0x80 count as letters so UTF-8 words stay whole), and each run of
// kShingleWords consecutive words is one shingle. A text with fewer words
// has a single shingle of all its words, so short texts still compare; an
// empty text has no signature and is never a near-duplicate.
//
// Parameters, chosen for the default threshold J = 0.85:
//  - 5-word shingles, the usual size for near-duplicate removal in LLM
//    training data (Broder's shingling; C4/Gopher/datatrove use 5-grams):
//    one reworded word changes at most 5 shingles, so a 100-word answer with
//    two words changed still has J ~ 0.8-0.9, while unrelated answers built
//    from common phrases share few 5-word runs.
//  - 128 hashes = 16 bands x 8 rows. Two texts become LSH candidates with
//    probability 1 - (1 - J^8)^16: 0.994 at J = 0.85, 0.61 at J = 0.7, 0.06
//    at J = 0.5, 0.0001 at J = 0.3 (the S-curve midpoint is (1/16)^(1/8) ~
//    0.71). So few unrelated pairs need checking and pairs at or above 0.85
//    are almost never missed; thresholds below ~0.75 lose recall. The
//    Jaccard estimate from 128 hashes has a standard error of
//    sqrt(J(1-J)/128) ~ 0.03 at J = 0.85. (datatrove's defaults, 14 x 8,
//    are close.)
// A signature is 128 little-endian uint32 (512 bytes), stored with the
// answer.
#ifndef DISTILLERY_COMMON_DEDUP_MINHASH_H_
#define DISTILLERY_COMMON_DEDUP_MINHASH_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace distillery {

inline constexpr int kShingleWords = 5;
inline constexpr int kMinHashBands = 16;
inline constexpr int kMinHashRows = 8;
inline constexpr int kMinHashSize = kMinHashBands * kMinHashRows;
// The threshold at which a committed answer counts as a near-duplicate of
// an earlier one in job status (JobCounters.near_duplicate_answers).
inline constexpr double kDefaultNearDuplicateThreshold = 0.85;

// The words of `text` as defined above.
std::vector<std::string> MinHashWords(std::string_view text);

// The signature of `text` (kMinHashSize * 4 bytes), or "" when the text has
// no words.
std::string MinHashSignature(std::string_view text);

// Estimated Jaccard similarity of the shingle sets behind two signatures:
// the fraction of equal positions. 0 when either is empty or malformed.
double EstimateJaccard(std::string_view a, std::string_view b);

// One key per band (kMinHashBands of them; none for an empty signature):
// the band number (1 byte) and a 64-bit hash of the band's rows (8 bytes).
// Two signatures are LSH candidates when they share any band key.
std::vector<std::string> LshBandKeys(std::string_view signature);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_DEDUP_MINHASH_H_
