//! todo
pub(crate) fn lesson(
    _: &crate::harness::LessonArgs,
    _: &std::path::Path,
) -> crate::harness::Lesson {
    todo!()
}
